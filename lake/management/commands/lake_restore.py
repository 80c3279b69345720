"""Read archived (tiered) days back from the lake into MongoDB: `manage.py lake_restore --from D --to D`.

Idempotent: running it twice stores each row once. Rollups were kept when the days were tiered;
to recompute them from the restored rows, `rebuild_rollups --from D --to D` (which restores
archived days by itself first).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from lake.errors import LakeError
from lake.restore import archived_days, lake_restore
from mdms.core.timeseries import archive


class Command(BaseCommand):
    help = "Restore tiered days of raw readings and events from the data lake into MongoDB."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="first", type=dt.date.fromisoformat, required=True, help="first local day")
        parser.add_argument(
            "--to", dest="end", type=dt.date.fromisoformat, required=True, help="day after the last (exclusive)"
        )
        parser.add_argument("--kind", choices=archive.KINDS, action="append", help="readings or events (default both)")

    def handle(self, *args: Any, **options: Any) -> None:
        first: dt.date = options["first"]
        end: dt.date = options["end"]
        if first >= end:
            raise CommandError("--from must come before --to (--to is the day after the last)")
        kinds: list[archive.Kind] = options["kind"] or list(archive.KINDS)
        todo = archived_days(first, end, kinds)
        if not todo:
            self.stdout.write(f"nothing to restore: no tiered day from {first} to {end} (exclusive)")
            return
        with tqdm(
            total=len(todo), desc="restoring from the lake", unit="day", file=self.progress_stream(), disable=False
        ) as bar:
            try:
                results = lake_restore(first_day=first, end_day=end, kinds=kinds, progress=bar.update)
            except LakeError as exc:
                raise CommandError(str(exc)) from exc
        inserted = sum(r.inserted for r in results)
        self.stdout.write(f"restored {len(results)} day-kind(s), {inserted} row(s) stored again")

    def progress_stream(self) -> Any:
        """The bar goes to the command's stderr as is (OutputWrapper would end every redraw with a newline)."""
        return getattr(self.stderr, "_out", self.stderr)
