"""The hand-off from bulk loads (historical import, data-hub backfill) to the jobs that judge a range.

The nightly VEE covers yesterday and the detection follower judges batches as they are stored, so
history loaded afterwards would be neither validated nor judged against baselines of its own
time. A bulk load calls `reprocess` with the meters and local days it stored; billing registers
the work (VEE, rollups, baselines, detection: billing.reprocess) when the apps are ready, since
ingest sits below billing and monitoring and must not import them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Protocol

# progress(stage, done, total): stages are named ("rollups", "vee", "detection", ...).
Progress = Callable[[str, int, int], object]


class Reprocessor(Protocol):
    def __call__(
        self, *, meter_pks: Sequence[int], first_day: dt.date, end_day: dt.date, progress: Progress | None = None
    ) -> object: ...


reprocessors: list[Reprocessor] = []


def reprocess(
    *, meter_pks: Sequence[int], first_day: dt.date, end_day: dt.date, progress: Progress | None = None
) -> None:
    """Validate, estimate, roll up and judge local days [first_day, end_day) of these meters."""
    if not reprocessors:
        raise RuntimeError("no reprocessor is registered (billing's AppConfig.ready registers one)")
    if not meter_pks or first_day >= end_day:
        return
    for reprocessor in reprocessors:
        reprocessor(meter_pks=meter_pks, first_day=first_day, end_day=end_day, progress=progress)
