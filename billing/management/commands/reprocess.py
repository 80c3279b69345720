"""`manage.py reprocess --from DAY --to DAY [--meter SERIAL ...]`: judge a range of history again.

VEE (estimates and exceptions), the daily rollups, the anomaly baselines and detection, for local
days --from to --to (inclusive), in the order the live system would have run them (billing.reprocess).
Without --meter, every meter with readings in the range. Idempotent, with progress.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from billing.reprocess import reprocess_range
from mdms.core.localtime import local_midnight, local_today
from mdms.core.models import Meter
from mdms.core.timeseries import rollups as store

# A range longer than this is most likely a typing error (and days of work).
MAX_DAYS = 800


def _day(option: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date like 2026-10-31, not {value!r}") from None


class Command(BaseCommand):
    help = "Run VEE, rollups, anomaly baselines and detection again over a range of local days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="first local day")
        parser.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD", help="last local day (inclusive)")
        parser.add_argument("--meter", action="append", metavar="SERIAL", help="a meter's serial (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        first = _day("--from", options["start"])
        last = _day("--to", options["end"])
        if first > last:
            raise CommandError(f"--from {first} is after --to {last}")
        if last > local_today():
            raise CommandError(f"--to {last} is in the future")
        if (last - first).days >= MAX_DAYS:
            raise CommandError(f"at most {MAX_DAYS} days at once")
        end = last + dt.timedelta(days=1)
        if options["meter"]:
            found = dict(Meter.objects.filter(serial__in=options["meter"]).values_list("serial", "pk"))
            unknown = sorted(set(options["meter"]) - set(found))
            if unknown:
                raise CommandError(f"no meter {', '.join(unknown)} in the registry")
            pks = sorted(found.values())
        else:
            pks = store.meters_with_readings(local_midnight(first), local_midnight(end) + dt.timedelta(hours=1))
        if not pks:
            self.stdout.write(f"no meter has readings from {first} to {last}: nothing to do")
            return
        bars: dict[str, tqdm[Any]] = {}

        def progress(stage: str, done: int, total: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(total=total, desc=stage, unit="day", disable=options["verbosity"] < 1,
                                         file=self.stderr)  # fmt: skip
            bar.n = done
            bar.refresh()

        try:
            result = reprocess_range(meter_pks=pks, first_day=first, end_day=end, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()
        self.stdout.write(
            f"{len(pks)} meters, {first} to {last}: {result.meter_days} meter-days, "
            f"{result.estimated_intervals} intervals estimated, {result.exceptions} exceptions, "
            f"{result.readings_judged} readings judged, {result.anomalies_stored} new anomalies"
        )
