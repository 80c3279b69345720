"""The demo's history in bulk (`simulate_meters --backfill-via pipeline`): what the simulated meters
would have sent for the days before now, made by the same meter model (the same households, faults,
registers and exchanges) and stored through the ingest pipeline's own code, without the broker's
round trip.

Each meter's emissions become the very messages it would publish (runner.messages: daily blocks of
readings, every event alone), and each message goes through pipeline.process_message (parsing, the
registry's admission, dead letters) into batches that pipeline.flush writes (dedupe, MongoDB). The
live followers are not handed these batches: replaying months through them costs an hour (detection
judges about 1,000 readings a second) and would hold their workers from the live data. The history's
share of their work is done here instead, over whole ranges, by the same code
(mdms.core.reprocessing, which billing and monitoring serve):

- rollups: each stretch of STRETCH_DAYS days is rolled up as soon as it is stored, so the charts
  fill from the oldest day on while the rest is made;
- outages, once every meter's history is stored: its power events in time order become incidents of
  their own times, each closed by its restore, and each meter's newest reading counts as heard from
  (the outage follower's own round: monitoring.outages.outages_replay);
- detection: the last JUDGE_DAYS days only, with the meters' baselines, in the background
  (`judge_recent`) while the meters go on in real time. Older history keeps its rollups and
  incidents but is not judged; `manage.py reprocess --from DAY --to DAY` judges any range later.

Meters are independent and seeded, so they are shared among `workers` forked processes (each opens
its own PostgreSQL, MongoDB and Redis connections). A worker reports its meters' states after each
stretch, and the caller saves them (--state): a restart carries on from the last stretch done. What
a stretch cut short had stored is recognised by the pipeline's dedupe (where the model makes it
again to the bit) or kept as a conflicting copy that never counts (the rollups take the first
received), and the stretch's days are rolled up again whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import itertools
import logging
import multiprocessing
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.queues import Queue as ProcessQueue
from pathlib import Path
from typing import Any

from django.db import connections
from tqdm import tqdm

from ingest import pipeline
from ingest.simulator.faults import Fault, FaultKind, LabelWriter
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.runner import BLOCK_SIZE, MeterLogin, messages, wire
from mdms.core import reprocessing
from mdms.core.localtime import local_day
from mdms.core.models import Meter
from mdms.core.mqtt import topics

logger = logging.getLogger(__name__)

# Processes making and storing the history: the machine the demo is measured on has two cores.
WORKERS = 2
# Days made, stored and rolled up at a time by each worker: the rollups of a stretch are a few
# aggregations, and a restart redoes at most one stretch.
STRETCH_DAYS = 8
# Readings per flush (one insert_many): what the MQTT worker's batches hold at full speed.
BATCH_READINGS = 10_000
# Judged by anomaly detection after the history is stored: the last day and today, which hold the
# operator's "active" anomalies (monitoring.selectors.ACTIVE_WINDOW).
JUDGE_DAYS = 2
# Readings move across a stretch's bounds by up to this much (held out-of-order readings released
# after it, a drifting clock's timestamps): the days rolled up for a stretch reach this far beyond.
STRETCH_MARGIN = dt.timedelta(hours=2)

# The planned exchange of a meter, done through the MDMS (simulate_meters.MdmsExchanger).
Exchanger = Callable[[SimulatedMeter, Fault], MeterLogin | None]
# Called in the calling process with {serial: state} of meters whose stretch is stored and rolled up.
StateSink = Callable[[dict[str, dict[str, Any]]], None]


@dataclasses.dataclass
class Totals:
    readings: int = 0  # made by the meter model
    stored: int = 0
    duplicates: int = 0  # already stored (a restart's redone stretch)
    conflicting: int = 0
    events: int = 0
    dead_lettered: int = 0
    model_cpu_s: float = 0.0  # the meter model's CPU time
    parse_s: float = 0.0  # messages made and parsed, admitted into batches (wall time, the making thread)
    write_s: float = 0.0  # pipeline.flush: dedupe and MongoDB's writes (wall time, the writer thread)
    rollups_s: float = 0.0  # the stretches' rollups (wall time, the writer thread)
    meter_pks: set[int] = dataclasses.field(default_factory=set)

    def add(self, other: Totals) -> None:
        for item in dataclasses.fields(self):
            if item.name == "meter_pks":
                self.meter_pks |= other.meter_pks
            else:
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


@dataclasses.dataclass
class HistoryResult:
    meters: list[SimulatedMeter]  # carried on to `end`: exchanged meters replaced by their successors
    totals: Totals
    workers: int
    seconds: float  # wall time of making, storing and rolling up
    outages_s: float = 0.0
    stopped: bool = False  # asked to stop before the end

    def describe(self) -> str:
        t = self.totals
        return (
            f"history: {t.readings:,} readings of {len(t.meter_pks)} meters made in {self.workers} processes and "
            f"stored in {self.seconds:.0f} s ({t.stored:,} stored, {t.duplicates:,} already there, "
            f"{t.conflicting:,} conflicting, {t.events:,} events, {t.dead_lettered:,} dead-lettered); "
            f"meter model {t.model_cpu_s:.0f} s of CPU, parsing {t.parse_s:.0f} s, writes {t.write_s:.0f} s, "
            f"rollups {t.rollups_s:.0f} s (summed over the processes); "
            f"outages {self.outages_s:.1f} s"
        )


def stretches(start: dt.datetime, end: dt.datetime, days: int = STRETCH_DAYS) -> list[tuple[dt.datetime, dt.datetime]]:
    """(start, end] cut at UTC midnights every `days` days: a meter resumed at a bound makes the same day."""
    bounds = [start]
    cursor = start.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while True:
        cursor += dt.timedelta(days=days)
        if cursor >= end:
            break
        if cursor > start:
            bounds.append(cursor)
    bounds.append(end)
    return list(itertools.pairwise(bounds))


class _Share:
    """One worker's meters: made stretch by stretch, stored through the pipeline, rolled up.

    The meter model and the parsing run on the calling thread; the writes (pipeline.flush) and the
    rollups go, in order, to a writer thread of the share's own, so that making the next readings
    goes on while MongoDB stores and aggregates the last ones (one batch in flight at a time). Each
    local day is rolled up once, as soon as every reading that may fall in it is stored (STRETCH_MARGIN
    after its end), and a stretch's states are reported once its days are rolled up.
    """

    def __init__(
        self,
        meters: list[SimulatedMeter],
        *,
        labels: LabelWriter,
        exchanger: Exchanger | None,
        report: Callable[[tuple[Any, ...]], None],
        first_day: dt.date,
    ) -> None:
        self.meters = meters
        self.labels = labels
        self.exchanger = exchanger
        self.report = report
        # A miss re-reads the registry at once: a meter put in by an exchange is known to the next message.
        self.registry = pipeline.MeterCache(refresh_s=3600, miss_refresh_s=0)
        self.watermarks = pipeline.Watermarks()
        self.batch = pipeline.Batch()
        self.totals = Totals()
        self._unrolled = first_day  # the oldest local day not rolled up yet
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-writer")
        self._pending: Future[object] | None = None

    def stretch(self, start: dt.datetime, end: dt.datetime, *, last: bool) -> None:
        """Make (start, end] for every meter of the share, and hand its writes and rollups on."""
        for index in range(len(self.meters)):
            meter = self.meters[index]
            made = 0
            while True:
                began_at = time.thread_time()
                emissions, began = meter.advance(start, end)
                self.totals.model_cpu_s += time.thread_time() - began_at
                self.labels.write(began)
                exchange, meter.exchange_due = meter.exchange_due, None
                made += self._add(meter, emissions)
                if exchange is None:
                    break
                # The old meter's readings up to its exchange are stored before it is exchanged.
                self._hand_batch()
                self.settle()
                successor = self._exchange(meter, exchange)
                if successor is not None:
                    meter = self.meters[index] = successor
                # else the old meter carries on (the exchange is not offered to it again)
            self.report(("made", made))
        self._hand_batch()
        # The days every reading of which is stored: up to the one STRETCH_MARGIN before the stretch's
        # end (readings cross a stretch's bounds by that much), or all of them after the last stretch.
        through = local_day(end) + dt.timedelta(days=1) if last else local_day(end - STRETCH_MARGIN)
        first, self._unrolled = self._unrolled, max(self._unrolled, through)
        self._hand(functools.partial(self._roll_up, first, through, _states(self.meters)))

    def settle(self) -> None:
        """Wait for the writer (and raise what it raised)."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        try:
            self.settle()
            self._hand(connections.close_all)  # the writer thread's own PostgreSQL connection
            self.settle()
        finally:
            self._writer.shutdown()

    def _hand(self, job: Callable[[], object]) -> None:
        self.settle()
        self._pending = self._writer.submit(job)

    def _add(self, meter: SimulatedMeter, emissions: Sequence[Any]) -> int:
        began_at = time.monotonic()
        now = dt.datetime.now(tz=dt.UTC)
        readings = 0
        for kind, payloads in messages(emissions, BLOCK_SIZE):
            message = pipeline.Message(topics.topic(meter.serial, kind), wire(payloads), dt.datetime.now(tz=dt.UTC))
            pipeline.process_message(message, self.batch, self.registry, now=now)
            if kind is topics.Kind.READINGS:
                readings += len(payloads)
        self.totals.parse_s += time.monotonic() - began_at
        if len(self.batch.readings) >= BATCH_READINGS:
            self._hand_batch()
        return readings

    def _hand_batch(self) -> None:
        batch, self.batch = self.batch, pipeline.Batch()
        if batch.messages:
            self._hand(functools.partial(self._store, batch))

    def _store(self, batch: pipeline.Batch) -> None:
        """On the writer thread: the batch through the pipeline's flush, counted."""
        began_at = time.monotonic()
        # Not handed to the followers: the history's rollups and outages are done here.
        pipeline.flush(batch, self.watermarks, live=False, hand_on=False)
        t, counts = self.totals, batch.counts
        t.meter_pks.update(doc["meter"] for doc in batch.readings)
        t.readings += counts["readings_received"]
        t.stored += counts["stored"]
        t.duplicates += counts["duplicates"]
        t.conflicting += counts["conflicting_duplicates"]
        t.events += counts["events_stored"]
        t.dead_lettered += counts["dead_lettered"]
        t.write_s += time.monotonic() - began_at

    def _roll_up(self, first_day: dt.date, end_day: dt.date, states: dict[str, dict[str, Any]]) -> None:
        """On the writer thread: the days [first_day, end_day) of the share's meters, then the states."""
        if self.totals.meter_pks and first_day < end_day:
            began_at = time.monotonic()
            reprocessing.reprocess(
                meter_pks=sorted(self.totals.meter_pks), first_day=first_day, end_day=end_day,
                stages={reprocessing.ROLLUPS},
            )  # fmt: skip
            self.totals.rollups_s += time.monotonic() - began_at
        self.report(("stretch", states))

    def _exchange(self, meter: SimulatedMeter, exchange: Fault) -> SimulatedMeter | None:
        assert self.exchanger is not None
        try:
            login = self.exchanger(meter, exchange)
        except Exception:  # the history goes on: the old meter keeps sending, the MDMS refuses it or not
            logger.exception("meter %s: the exchange at %s failed", meter.serial, exchange.start.isoformat())
            login = None
        self.labels.write([Fault(meter.serial, FaultKind.METER_EXCHANGE, exchange.start, exchange.end,
                                 {"new_serial": login.serial if login else None})])  # fmt: skip
        if login is None:
            return None
        return meter.successor(login.serial, at=exchange.start)


def _states(meters: Sequence[SimulatedMeter]) -> dict[str, dict[str, Any]]:
    return {meter.serial: meter.state() for meter in meters}


def _run_share(
    meters: list[SimulatedMeter],
    parts: list[tuple[dt.datetime, dt.datetime]],
    *,
    labels: Path | None,
    exchanger: Exchanger | None,
    report: Callable[[tuple[Any, ...]], None],
    stop: Callable[[], bool],
) -> None:
    """A share from start to end; reports ("made", n), ("stretch", states) and finally ("done", meters, totals)."""
    writer = LabelWriter(labels)
    first_day = local_day(parts[0][0] - STRETCH_MARGIN) if parts else dt.date.min
    share = _Share(meters, labels=writer, exchanger=exchanger, report=report, first_day=first_day)
    try:
        for k, (start, end) in enumerate(parts):
            if stop():
                break
            share.stretch(start, end, last=k == len(parts) - 1)
    finally:
        try:
            share.close()
        finally:
            writer.close()
    report(("done", share.meters, share.totals))


def _worker(
    meters: list[SimulatedMeter],
    parts: list[tuple[dt.datetime, dt.datetime]],
    labels: Path | None,
    exchanger: Exchanger | None,
    out: ProcessQueue[tuple[Any, ...]],
    stopping: Any,  # a multiprocessing Event
) -> None:
    # Stopped (Ctrl-C, the supervisor's SIGTERM): finish the meter at hand, report, and end.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        _run_share(meters, parts, labels=labels, exchanger=exchanger, report=out.put, stop=stopping.is_set)
    except BaseException:
        out.put(("failed", traceback.format_exc()))
        raise
    finally:
        connections.close_all()


def make_history(
    meters: list[SimulatedMeter],
    *,
    start: dt.datetime,
    end: dt.datetime,
    workers: int = 2,
    labels: Path | None = None,
    exchanger: Exchanger | None = None,
    save_states: StateSink = lambda states: None,
    progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> HistoryResult:
    """Make (start, end] of every meter's history, store it through the pipeline, roll it up, and
    turn its outages into incidents. Each meter skips what it sent before (its last_ts)."""
    began_at = time.monotonic()
    history_start = start
    for meter in meters:
        meter.exchanges = exchanger is not None
    resumed = [meter.last_ts for meter in meters]
    if all(resumed):
        # Resumed (--state): only what is left is made, from the meter furthest behind.
        start = max(start, min(ts for ts in resumed if ts is not None))
    parts = stretches(start, end) if start < end else []
    workers = max(1, min(workers, len(meters)))
    total = sum(_intervals_left(meter, start, end) for meter in meters)
    result = HistoryResult(meters=[], totals=Totals(), workers=workers, seconds=0.0)
    final: list[list[SimulatedMeter]] = [[] for _ in range(workers)]
    states: dict[str, dict[str, Any]] = {}
    # A bar on a terminal; in a log (make run's supervisor), a line every tenth of the way.
    on_terminal = sys.stderr.isatty()
    with tqdm(total=total, unit="reading", unit_scale=True, desc="history", disable=not progress or not on_terminal,
              file=sys.stderr) as bar:  # fmt: skip
        made = [0]

        def take(share: int, report: tuple[Any, ...]) -> None:
            kind = report[0]
            if kind == "made":
                bar.update(report[1])
                tenth, made[0] = made[0] * 10 // max(1, total), made[0] + report[1]
                if progress and not on_terminal and made[0] * 10 // max(1, total) > tenth:
                    elapsed = time.monotonic() - began_at
                    print(f"history: {made[0]:,} of about {total:,} readings made and stored ({elapsed:.0f} s)",
                          file=sys.stderr, flush=True)  # fmt: skip
            elif kind == "stretch":
                states.update(report[1])
                save_states(dict(states))
            elif kind == "done":
                final[share] = report[1]
                result.totals.add(report[2])
            elif kind == "failed":
                raise RuntimeError(f"a history worker failed:\n{report[1]}")

        shares = [meters[k::workers] for k in range(workers)]
        if workers == 1:
            _run_share(shares[0], parts, labels=labels, exchanger=exchanger, report=lambda r: take(0, r),
                       stop=should_stop)  # fmt: skip
            result.stopped = should_stop()
        else:
            _run_forked(shares, parts, labels=labels, exchanger=exchanger, take=take, should_stop=should_stop)
            result.stopped = should_stop()
    # Back in the original order, each meter or its successor in its place.
    result.meters = [meter for k in range(len(meters)) for meter in [final[k % workers][k // workers]]]
    result.seconds = time.monotonic() - began_at
    if not result.stopped and not should_stop():
        # The whole history's outages, also what a run cut short before this point had stored (a
        # replay records each outage once, however often it is replayed).
        began_at = time.monotonic()
        pks = Meter.objects.filter(serial__in=[m.serial for m in result.meters]).values_list("pk", flat=True)
        reprocessing.reprocess(
            meter_pks=sorted({*pks, *result.totals.meter_pks}),
            first_day=local_day(history_start - STRETCH_MARGIN),
            end_day=local_day(end) + dt.timedelta(days=1),
            stages={reprocessing.OUTAGES},
        )
        result.outages_s = time.monotonic() - began_at
    return result


def _intervals_left(meter: SimulatedMeter, start: dt.datetime, end: dt.datetime) -> int:
    since = max(start, meter.last_ts) if meter.last_ts else start
    return max(0, int((end - since).total_seconds()) // meter.interval_s)


def _run_forked(
    shares: list[list[SimulatedMeter]],
    parts: list[tuple[dt.datetime, dt.datetime]],
    *,
    labels: Path | None,
    exchanger: Exchanger | None,
    take: Callable[[int, tuple[Any, ...]], None],
    should_stop: Callable[[], bool],
) -> None:
    context = multiprocessing.get_context("fork")
    stopping = context.Event()
    outs: list[ProcessQueue[tuple[Any, ...]]] = [context.Queue() for _ in shares]
    # A forked child must not inherit this process's PostgreSQL connections (it opens its own).
    connections.close_all()
    processes = [
        context.Process(
            target=_worker, args=(share, parts, labels, exchanger, out, stopping), daemon=True, name=f"history-{k}"
        )
        for k, (share, out) in enumerate(zip(shares, outs, strict=True))
    ]
    for process in processes:
        process.start()
    done = [False] * len(shares)
    try:
        while not all(done):
            if should_stop():
                stopping.set()
            for k, out in enumerate(outs):
                with contextlib.suppress(queue.Empty):
                    while True:
                        report = out.get(timeout=0.05)
                        take(k, report)
                        if report[0] == "done":
                            done[k] = True
                            break
                if not done[k] and not processes[k].is_alive() and out.empty():
                    raise RuntimeError(f"history worker {k} ended (exit code {processes[k].exitcode}) before its end")
    finally:
        stopping.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def judge_recent(meter_pks: Sequence[int], *, end: dt.datetime, days: int = JUDGE_DAYS) -> threading.Thread:
    """Anomaly detection over the history's last `days` local days, with the meters' current baselines
    rebuilt: in a thread of its own, so that the meters go on in real time meanwhile."""

    def judge() -> None:
        try:
            reprocessing.reprocess(
                meter_pks=list(meter_pks),
                first_day=local_day(end) - dt.timedelta(days=days - 1),
                end_day=local_day(end) + dt.timedelta(days=1),
                stages={reprocessing.DETECTION, reprocessing.BASELINES},
            )
            logger.info("history: the last %s days of %s meters judged", days, len(meter_pks))
        except Exception:
            logger.exception("history: judging the last %s days failed (manage.py reprocess can redo it)", days)
        finally:
            connections.close_all()  # this thread's

    thread = threading.Thread(target=judge, name="judge-recent-history", daemon=True)
    thread.start()
    return thread
