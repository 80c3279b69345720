"""`manage.py mongo_shard`: print (or, with --execute, run on a mongos) the commands that shard MongoDB."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mdms.core import timeseries
from mdms.core.timeseries import sharding


class Command(BaseCommand):
    help = "Shard the readings and their companions on a sharded MongoDB cluster (docs/scaling.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--execute",
            action="store_true",
            help="run the commands against MONGODB_URI, which must be a mongos (default: print them)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        database = timeseries.db()
        if not options["execute"]:
            self.stdout.write("// Run on a mongos (mongosh), or again with --execute:")
            for command in sharding.shard_commands(database.name):
                self.stdout.write(f"db.adminCommand({json.dumps(command)})")
            return
        timeseries.ensure_collections()
        try:
            for line in sharding.apply(database):
                self.stdout.write(line)
        except sharding.NotASharedCluster as exc:
            raise CommandError(f"{exc}; print the commands without --execute to review them") from None
