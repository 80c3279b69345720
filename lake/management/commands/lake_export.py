"""Export local days of raw readings and events to the lake.

`manage.py lake_export --day D`, `--from D --to D` (to exclusive), or `--pending` (every finished
day not yet in the lake, as the nightly job does). Re-exporting a day replaces its partition.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from lake.errors import LakeError
from lake.export import lake_day_export, meter_places
from lake.services import days_to_export
from mdms.core.localtime import each_day, local_today
from mdms.core.timeseries import archive


class Command(BaseCommand):
    help = "Export local days of raw readings and events to the Parquet data lake (replacing what was there)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", type=dt.date.fromisoformat, help="one local day (YYYY-MM-DD)")
        parser.add_argument("--from", dest="first", type=dt.date.fromisoformat, help="first local day")
        parser.add_argument("--to", dest="end", type=dt.date.fromisoformat, help="day after the last (exclusive)")
        parser.add_argument("--pending", action="store_true", help="every finished day not yet in the lake")
        parser.add_argument("--kind", choices=archive.KINDS, action="append", help="readings or events (default both)")

    def handle(self, *args: Any, **options: Any) -> None:
        kinds: list[archive.Kind] = options["kind"] or list(archive.KINDS)
        jobs: list[tuple[archive.Kind, dt.date]]
        if options["pending"]:
            jobs = [(kind, day) for kind in kinds for day in days_to_export(kind)]
        elif options["day"]:
            jobs = [(kind, options["day"]) for kind in kinds]
        elif options["first"] and options["end"]:
            if options["first"] >= options["end"]:
                raise CommandError("--from must come before --to (--to is the day after the last)")
            jobs = [(kind, day) for day in each_day(options["first"], options["end"]) for kind in kinds]
        else:
            raise CommandError("say which days: --day D, --from D --to D, or --pending")
        today = local_today()
        unfinished = sorted({day for _kind, day in jobs if day >= today})
        if unfinished:
            raise CommandError(f"{unfinished[0]} is not over yet (local time): only finished days are exported")
        places = meter_places()
        rows = 0
        with tqdm(
            total=len(jobs), desc="exporting to the lake", unit="day", file=self.progress_stream(), disable=False
        ) as bar:
            for kind, day in jobs:
                try:
                    result = lake_day_export(kind=kind, day=day, places=places)
                except LakeError as exc:
                    raise CommandError(str(exc)) from exc
                rows += result.totals.rows
                bar.update(1)
        self.stdout.write(f"exported {len(jobs)} day-kind partition(s), {rows} row(s)")

    def progress_stream(self) -> Any:
        """The bar goes to the command's stderr as is (OutputWrapper would end every redraw with a newline)."""
        return getattr(self.stderr, "_out", self.stderr)
