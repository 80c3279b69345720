"""Remove from MongoDB the raw rows of verified lake days older than LAKE_RAW_RETENTION_DAYS.

`manage.py lake_tier [--before D]`: each day is verified right before its rows go; a day that
does not match stays in MongoDB and its problem is printed (and shown on the operator's page).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from lake.tiering import lake_tier, retention_cutoff, tier_candidates
from mdms.core.timeseries import archive


class Command(BaseCommand):
    help = "Tier verified old days: their raw readings and events leave MongoDB (rollups stay)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--before", type=dt.date.fromisoformat, help="tier days before this one (default: the retention's cutoff)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        cutoff: dt.date | None = options["before"] or retention_cutoff(now)
        if cutoff is None:
            raise CommandError("tiering is off (LAKE_RAW_RETENTION_DAYS=0); pass --before D to tier anyway")
        total = sum(len(tier_candidates(kind, cutoff, now)) for kind in archive.KINDS)
        with tqdm(
            total=total, desc="verifying and tiering", unit="day", file=self.progress_stream(), disable=False
        ) as bar:
            result = lake_tier(now=now, cutoff=cutoff, progress=bar.update)
        for kind, day, why in result.refused:
            self.stderr.write(f"not tiered: {kind} of {day}: {why}")
        self.stdout.write(
            f"tiered {len(result.tiered)} day-kind(s) before {cutoff}, {result.rows_removed} raw row(s) removed; "
            f"{len(result.refused)} refused"
        )

    def progress_stream(self) -> Any:
        """The bar goes to the command's stderr as is (OutputWrapper would end every redraw with a newline)."""
        return getattr(self.stderr, "_out", self.stderr)
