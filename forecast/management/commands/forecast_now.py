"""`manage.py forecast_now [--at ISO]`: run one forecast and print each series' peak against its rating."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from forecast import services
from mdms.core.localtime import local_zone


def _moment(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--at {value!r} is not an ISO date-time such as 2026-11-22T09:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=local_zone())


class Command(BaseCommand):
    help = "Forecast the next 48 hours of every region and feeder now, store it, and print peaks vs ratings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--at", help="forecast origin (ISO, local time unless an offset is given); default now")

    def handle(self, *args: Any, **options: Any) -> None:
        origin = _moment(options["at"]) if options["at"] else timezone.now()
        result = services.forecast_run(origin=origin)
        zone = local_zone()
        share = settings.FORECAST_CAPACITY_WARNING_SHARE
        self.stdout.write(
            f"Forecast from {result.run.origin.astimezone(zone):%Y-%m-%d %H:%M %Z}, {result.run.horizon_hours} h, "
            f"model: {result.run.model} ({result.run.duration_s:.2f} s)"
        )
        self.stdout.write(f"{'series':38} {'meters':>6} {'peak kW':>9} {'peak at':>16} {'rating':>8} {'share':>7}")
        for item in result.forecasts:
            peak_kw, offset = item.peak
            rating = item.key.capacity_kw
            when = (
                ""
                if offset is None
                else f"{(result.run.origin + dt.timedelta(hours=offset)).astimezone(zone):%a %d %H:%M}"
            )
            peak = "—" if peak_kw is None else f"{peak_kw:.1f}"
            ratio = f"{peak_kw / rating:.0%}" if peak_kw is not None and rating else ""
            flag = "  WARNING" if peak_kw is not None and rating and peak_kw > share * rating else ""
            rating_text = f"{rating:.0f}" if rating else "—"
            self.stdout.write(
                f"{item.key.label[:38]:38} {item.meters:>6} {peak:>9} {when:>16} {rating_text:>8} {ratio:>7}{flag}"
            )
        changes = result.warnings
        self.stdout.write(
            f"Capacity warnings (over {share:.0%} of rating): {len(changes.opened)} opened, "
            f"{len(changes.updated)} still open, {len(changes.closed)} closed."
        )
