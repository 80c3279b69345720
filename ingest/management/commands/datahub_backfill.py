"""Backfill load curves from the data hub: `manage.py datahub_backfill (--meter SERIAL ... | --all) --from DAY [--to DAY]`.

Pulls every local day from --from to --to (inclusive; yesterday by default), at most two years back,
in requests of at most 7 days, one per second per hub (the shared rate limiter). Resumable: days
an earlier pull got ok are skipped unless --force, so after an interruption or errors the same
command goes on with what is missing. Exits with an error when a chunk failed, listing them.

The pulled days are then validated and judged as the live feed would have been (VEE, rollups,
anomaly baselines and detection: mdms.core.reprocessing), with progress; --no-reprocess skips it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingest.datahub import services
from ingest.datahub.pull import PullBusy, datahub_pull
from ingest.models import DataHubConnector, DataHubPull
from mdms.core.localtime import local_today
from mdms.core.reprocessing import reprocess

MAX_YEARS_BACK = 2


def _day(option: str, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date like 2025-01-31, not {value!r}") from None


def earliest_day(today: dt.date) -> dt.date:
    """Two years before today (28 February when today is 29 February)."""
    try:
        return today.replace(year=today.year - MAX_YEARS_BACK)
    except ValueError:
        return today.replace(year=today.year - MAX_YEARS_BACK, day=28)


class Command(BaseCommand):
    help = "Pull load curves from the data hub for past days (at most two years back), resumable."

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--meter", action="append", metavar="SERIAL", help="a meter's serial (repeatable)")
        who.add_argument("--all", action="store_true", help="every enabled connector")
        parser.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="first local day")
        parser.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last local day (default: yesterday)")
        parser.add_argument("--force", action="store_true", help="pull again days already pulled ok")
        parser.add_argument(
            "--no-reprocess", action="store_true", help="skip VEE, rollups and detection over the pulled days"
        )

    def connectors(self, serials: list[str] | None) -> list[DataHubConnector]:
        if serials is None:
            found = list(services.enabled_connectors())
            if not found:
                raise CommandError("no enabled data hub connector: add one in the admin first")
            return found
        by_serial = {
            c.meter.serial: c
            for c in DataHubConnector.objects.select_related("meter").filter(meter__serial__in=serials)
        }
        for serial in serials:
            if serial not in by_serial:
                raise CommandError(f"meter {serial!r} has no data hub connector")
            if not by_serial[serial].enabled:
                raise CommandError(f"the data hub connector of meter {serial!r} is disabled")
        return [by_serial[serial] for serial in dict.fromkeys(serials)]

    def handle(self, *args: Any, **options: Any) -> None:
        today = local_today()
        start = _day("--from", options["start"])
        end = _day("--to", options["end"]) or today - services.ONE_DAY
        assert start is not None
        earliest = earliest_day(today)
        if start < earliest:
            raise CommandError(f"--from {start} is more than two years back: the earliest day is {earliest}")
        if end >= today:
            raise CommandError(f"--to {end} is not in the past: the latest complete day is {today - services.ONE_DAY}")
        if start > end:
            raise CommandError(f"--from {start} is after --to {end}")
        connectors = self.connectors(options["meter"])
        planned = services.plan(connectors, start, end + services.ONE_DAY, force=options["force"])
        total_days = (end - start).days + 1
        skipped_days = total_days * len(connectors) - sum((c.end - c.start).days for c in planned)
        summary = services.RunSummary()
        with tqdm(total=len(planned), unit="request", disable=options["verbosity"] < 1, file=self.stderr) as bar:
            for chunk in planned:
                bar.set_postfix_str(f"{chunk.connector.meter.serial} {chunk.start}")
                try:
                    pull = datahub_pull(
                        connector=chunk.connector,
                        start=chunk.start,
                        end=chunk.end,
                        trigger=DataHubPull.Trigger.BACKFILL,
                    )
                except PullBusy as exc:
                    summary.busy += 1
                    self.stderr.write(
                        f"{chunk.connector.meter.serial} {chunk.start}..{chunk.end - services.ONE_DAY}: {exc}"
                    )
                else:
                    summary.add(pull)
                bar.update()
        if summary.readings_stored and not options["no_reprocess"]:
            self.reprocess([c.meter_id for c in connectors], start, end, shown=options["verbosity"] >= 1)
        for pull in summary.failed:
            status = f"HTTP {pull.http_status}" if pull.http_status else "no answer"
            self.stderr.write(
                f"{pull.connector.meter.serial} {pull.start_day}..{pull.last_day} ({status}): {pull.error}"
            )
        self.stdout.write(
            f"{len(connectors)} connectors, {start} to {end}: {len(planned)} requests, {summary.ok} ok, "
            f"{summary.errors} failed, {summary.busy} busy; {skipped_days} days already pulled skipped; "
            f"{summary.readings_stored} readings stored, {summary.duplicates} already there"
        )
        if summary.errors or summary.busy:
            raise CommandError(
                f"{summary.errors + summary.busy} of {len(planned)} requests did not succeed: run the same command again to retry them"
            )

    def reprocess(self, meter_pks: list[int], first: dt.date, last: dt.date, *, shown: bool) -> None:
        bars: dict[str, tqdm[Any]] = {}

        def progress(stage: str, done: int, total: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(total=total, desc=stage, unit="day", disable=not shown, file=self.stderr)
            bar.n = done
            bar.refresh()

        try:
            reprocess(meter_pks=meter_pks, first_day=first, end_day=last + dt.timedelta(days=1), progress=progress)
        finally:
            for bar in bars.values():
                bar.close()
