"""The hand-off from bulk loads (historical import, data-hub backfill, the demo's history) to the jobs
that judge a range.

The nightly VEE covers yesterday and the detection follower judges batches as they are stored, so
history loaded afterwards would be neither validated nor judged against baselines of its own
time. A bulk load calls `reprocess` with the meters and local days it stored; billing registers
the work (VEE, rollups, baselines, detection, outages: billing.reprocess) when the apps are ready,
since ingest sits below billing and monitoring and must not import them.

`stages` names the work to do, in the order of STAGES whatever the order given: an import does
DEFAULT_STAGES; the simulator's history (ingest.simulator.history) rolls up each stretch as it is
stored, then applies the power events of the whole range as the outage follower would have, and
judges only a recent window (detection is the slowest stage by far).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

# progress(stage, done, total): stages are named ("rollups", "vee", "detection", ...).
Progress = Callable[[str, int, int], object]

# The work a range can be given, in the order it is done: the daily rollups, VEE, anomaly detection
# day by day, the meters' current baselines, and the outages (power events in time order become
# incidents of their own times; each meter's newest reading counts as heard from).
ROLLUPS, VEE, DETECTION, BASELINES, OUTAGES = "rollups", "vee", "detection", "baselines", "outages"
STAGES = (ROLLUPS, VEE, DETECTION, BASELINES, OUTAGES)
# What an imported file gets: its readings carry no events.
DEFAULT_STAGES = frozenset({ROLLUPS, VEE, DETECTION, BASELINES})


class Reprocessor(Protocol):
    def __call__(
        self,
        *,
        meter_pks: Sequence[int],
        first_day: dt.date,
        end_day: dt.date,
        progress: Progress | None = None,
        stages: Collection[str] = DEFAULT_STAGES,
    ) -> object: ...


reprocessors: list[Reprocessor] = []


def reprocess(
    *,
    meter_pks: Sequence[int],
    first_day: dt.date,
    end_day: dt.date,
    progress: Progress | None = None,
    stages: Collection[str] = DEFAULT_STAGES,
) -> None:
    """Validate, estimate, roll up and judge local days [first_day, end_day) of these meters (`stages` of it)."""
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown reprocessing stages {sorted(unknown)}; known: {', '.join(STAGES)}")
    if not reprocessors:
        raise RuntimeError("no reprocessor is registered (billing's AppConfig.ready registers one)")
    if not meter_pks or first_day >= end_day or not stages:
        return
    for reprocessor in reprocessors:
        reprocessor(meter_pks=meter_pks, first_day=first_day, end_day=end_day, progress=progress, stages=stages)
