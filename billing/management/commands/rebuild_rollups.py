"""Backfill the daily rollups: `manage.py rebuild_rollups [--meter SERIAL ...] [--from DATE --to DATE]`.

Recomputes every meter-day in the range from the raw readings (idempotent: safe to run again, or
while the stream follower runs). Days tiered to the data lake are read back from it first.
Without --from/--to, the last 35 local days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from billing.rollups import rollups_rebuild
from lake.restore import archived_days, lake_restore
from mdms.core.localtime import local_today
from mdms.core.models import Meter

DEFAULT_DAYS = 35


class Command(BaseCommand):
    help = "Recompute daily/hourly rollups from the raw readings for a range of local days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--meter", action="append", default=[], help="meter serial (repeatable); default all")
        parser.add_argument("--from", dest="first", type=dt.date.fromisoformat, help="first local day (YYYY-MM-DD)")
        parser.add_argument("--to", dest="end", type=dt.date.fromisoformat, help="day after the last (exclusive)")

    def handle(self, *args: Any, **options: Any) -> None:
        today = local_today()
        end: dt.date = options["end"] or today + dt.timedelta(days=1)
        first: dt.date = options["first"] or end - dt.timedelta(days=DEFAULT_DAYS)
        if first >= end:
            raise CommandError("--from must come before --to")
        meter_pks = None
        if options["meter"]:
            found = dict(Meter.objects.filter(serial__in=options["meter"]).values_list("serial", "pk"))
            unknown = sorted(set(options["meter"]) - set(found))
            if unknown:
                raise CommandError(f"unknown meter(s): {', '.join(unknown)}")
            meter_pks = sorted(found.values())
        # Days tiered to the data lake have no raw readings in MongoDB: read them back first.
        archived = archived_days(first, end, kinds=("readings",))
        if archived:
            with tqdm(total=len(archived), desc="restoring from the lake", unit="day", disable=None) as bar:
                lake_restore(first_day=first, end_day=end, kinds=("readings",), progress=bar.update)
            self.stdout.write(f"restored {len(archived)} archived day(s) from the data lake")
        with tqdm(total=(end - first).days, desc="rebuilding rollups", unit="day", disable=None) as bar:
            days = rollups_rebuild(
                first_day=first, end_day=end, meter_pks=meter_pks, progress=lambda days: bar.update(days)
            )
        self.stdout.write(f"rebuilt {days} day(s) from {first} to {end} (exclusive)")
