"""The pipeline behind ingest (issue 13): the highest offered rate at which every follower keeps up.

The stack runs as `make run` runs it, from the Procfile's own command lines: the ingest worker,
the three followers of the stored-batches stream (rollups, detect, outages: one solo worker each on
its own queue) and beat, which ticks them every 5 seconds. The web server, the general worker
(hourly and nightly jobs), the command dispatcher and the simulator are not started: none of them
is in the path from a published reading to its rollup, anomaly verdict and outage state.

A publisher of the bench's own (bench.mqtt_wire, a head-end system's account) offers readings
through the real broker at a set rate, 10,000 meters, one reading per message or daily interval
blocks of 96. Each step runs STEP_S seconds; then the bench waits for every stage to drain (or,
past DRAIN_S, moves the lagging followers past their backlog) before the next step.

At each step, from the stored-batches stream itself (each entry is one stored batch, its id the
time it was stored, its count the readings in it):
- the ingest rate: readings stored per second over the step;
- each follower's rate: readings in the entries it has finished, per second over the step;
- each follower's lag in seconds of data: how long ago the oldest entry it has not finished was
  stored (0 when it has finished them all); for the ingest, the readings published and not yet
  stored, over the offered rate.

The issue asks for the lag after 5 minutes a step. A ladder of 5-minute steps for both loads takes
well over an hour on 2 shared cores, so the steps are shorter and the lag at 5 minutes is projected
from what each stage did in its step: a stage doing readings at rate f while readings arrive at
rate i falls behind by (1 - f/i) seconds of data each second, so its lag at HORIZON_S is
lag_end + max(0, 1 - f/i) * (HORIZON_S - STEP_S). A step passes when every stage's measured and
projected lag are under LAG_LIMIT_S. The ladder multiplies the rate by GROWTH until a step fails,
then bisects between the last pass and the first failure BISECTIONS times.

The MongoDB insert_many ceiling of the same documents is measured in the same run, so the ratio
compares like with like on whatever else the shared machine was doing (its load average is reported).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from tqdm import tqdm

from bench.common import ROOT, save_results, save_section
from bench.ingest import documents_for, ensure_meters, hes_credentials, mongo_insert_many_ceiling
from bench.mqtt_wire import FastPublisher, publish_packet
from billing.rollups import GROUP as ROLLUPS_GROUP
from mdms.core import followers, stored_batches, timeseries
from mdms.core.localtime import local_zone
from mdms.core.mqtt import broker, topics
from mdms.core.mqtt.client import connect, ingest_credentials, new_client
from monitoring.models import IncidentMeter, OutageIncident
from monitoring.outages import OUTAGES_GROUP
from monitoring.services import DETECT_GROUP

METERS = 10_000
BLOCK = 96
STEP_S = int(os.environ.get("PIPELINE_STEP_S", "60"))
DRAIN_S = int(os.environ.get("PIPELINE_DRAIN_S", "240"))
HORIZON_S = 300  # the 5 minutes a step
LAG_LIMIT_S = 60.0
GROWTH = 1.6
BISECTIONS = 2
# (first rate, goal) in readings/s, one reading per message and daily blocks.
SINGLE_START, SINGLE_GOAL = 2_000, 5_000
BLOCK_START, BLOCK_GOAL = 8_000, 20_000
# The ladder stops climbing past this multiple of the goal (a pass there is enough to report).
CLIMB_LIMIT = 3.0
FOLLOWERS = (ROLLUPS_GROUP, DETECT_GROUP, OUTAGES_GROUP)
PROCESSES = ("ingest", "rollups", "detect", "outages", "beat")
SAMPLE_S = 1.0
INGEST_CLIENT_ID = f"bench-pipeline-{uuid.uuid4().hex[:6]}"
# Each drain waits at most this long for the ingest's backlog (in the broker) too; a step whose
# backlog the ingest cannot take by then ends its ladder (every higher rate would fail as well).
INGEST_DRAIN_S = int(os.environ.get("PIPELINE_INGEST_DRAIN_S", "120"))
TICK_S = 0.05


def procfile() -> dict[str, str]:
    """The Procfile's command lines by process name: what `make run` starts."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#") and ":" in line:
            name, command = line.split(":", 1)
            commands[name.strip()] = command.strip()
    return commands


def start_stack() -> dict[str, subprocess.Popen[bytes]]:
    """The ingest worker, the followers and beat, as the Procfile starts them, logging to var/log/bench-pipeline-*."""
    commands = procfile()
    logs = ROOT / "var" / "log"
    logs.mkdir(parents=True, exist_ok=True)
    schedule = ROOT / "var" / "run" / "bench-pipeline-celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    schedule.unlink(missing_ok=True)
    started = {}
    for name in PROCESSES:
        argv = shlex.split(commands[name])
        if name == "beat":  # a schedule file of its own, never the demo's
            argv[argv.index("--schedule") + 1] = str(schedule)
        env = dict(os.environ, INGEST_CLIENT_ID=INGEST_CLIENT_ID)
        log = open(logs / f"bench-pipeline-{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        started[name] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return started


def end_sessions(client_ids: list[str]) -> None:
    """Drop the broker's persistent sessions of these ingest client ids (clean start, no expiry).

    The ingest worker keeps its session an hour after it stops (ingest.worker.SESSION_EXPIRY_S) and
    the broker goes on handing that session its share of the shared subscription: a stopped bench
    worker's session would take a share of the next run's messages, to be lost with it."""
    username, password = ingest_credentials()
    for client_id in client_ids:
        client = new_client(client_id=client_id, username=username, password=password)
        connect(client, clean_start=True, session_expiry_s=0)
        client.loop_start()
        time.sleep(0.5)
        client.disconnect()
        client.loop_stop()


def stop_stack(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    end_sessions([INGEST_CLIENT_ID])


def _reading(ts: dt.datetime, k: int) -> dict[str, Any]:
    """The same values for every meter at one interval: the payload is encoded once per interval."""
    hour = ts.hour + ts.minute / 60
    energy = round(0.08 + 0.12 * (1 + (hour - 13) ** 2 / 40) ** -1, 4)
    return {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "interval_s": 900,
        "energy_import_kwh": energy,
        "energy_export_kwh": 0.0,
        "register_import_kwh": round(10_000 + k * 0.2, 3),
        "power_w": round(energy * 4000, 1),
        "voltage_v": 230.0,
        "current_a": round(energy * 4000 / 230 / 0.95, 3),
        "frequency_hz": 50.0,
        "power_factor": 0.95,
    }


class Load:
    """An endless sequence of QoS 1 PUBLISH packets: every meter's next interval (or next day, for blocks)."""

    def __init__(self, serials: list[str], start: dt.datetime, *, block: bool) -> None:
        self.topics = [topics.topic(serial, topics.Kind.READINGS) for serial in serials]
        self.start = start
        self.block = block
        self.readings_per_message = BLOCK if block else 1
        self.next_id = 0
        self.position = 0  # messages produced so far
        self._payload_for = -1
        self._payload = b""
        # The meter-interval (or meter-day) produced last, for the window the bench reports.
        self.first_ts = start

    def _payload_of(self, step: int) -> bytes:
        if step != self._payload_for:
            if self.block:
                day = self.start + dt.timedelta(days=step)
                readings = [_reading(day + dt.timedelta(minutes=15 * (k + 1)), step * BLOCK + k) for k in range(BLOCK)]
                self._payload = json.dumps(readings).encode()
            else:
                self._payload = json.dumps(_reading(self.start + dt.timedelta(minutes=15 * (step + 1)), step)).encode()
            self._payload_for = step
        return self._payload

    def newest_ts(self) -> dt.datetime:
        """The end of the newest interval produced so far (of a block: its day's last)."""
        step = max(0, self.position - 1) // len(self.topics)
        if self.block:
            return self.start + dt.timedelta(days=step + 1)
        return self.start + dt.timedelta(minutes=15 * (step + 1))

    def take(self, count: int) -> list[bytes]:
        packets = []
        for _ in range(count):
            step, meter = divmod(self.position, len(self.topics))
            self.next_id = self.next_id % 65535 + 1
            packets.append(publish_packet(self.topics[meter], self._payload_of(step), self.next_id))
            self.position += 1
        return packets


class StreamWatch:
    """The stored-batches stream as the bench sees it: every entry's time and count, and each group's frontier."""

    def __init__(self) -> None:
        self.ids: list[tuple[int, int]] = []
        self.counts: list[int] = []
        self.cumulative: list[int] = []
        self._last = "0-0"

    def poll(self) -> None:
        client = stored_batches.connection()
        while True:
            page: Any = client.xrange(stored_batches.STREAM, min=f"({self._last}", max="+", count=10_000)
            if not page:
                return
            for entry_id, fields in page:
                if fields.get("kind") == "readings":
                    self.ids.append(stored_batches._id_key(entry_id))
                    self.counts.append(int(fields.get("count", 0)))
            self._last = page[-1][0]
            self.cumulative = list(accumulate(self.counts))

    def stored(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0

    def frontier(self, group: str) -> tuple[int, float]:
        """(readings finished by this follower, lag in seconds: age of its oldest unfinished entry)."""
        client = stored_batches.connection()
        last_delivered = "0-0"
        if not self.ids:
            return 0, 0.0
        groups: Any = client.xinfo_groups(stored_batches.STREAM)
        mine = [entry for entry in groups if entry["name"] == group]
        if mine:
            last_delivered = str(mine[0].get("last-delivered-id") or "0-0")
        pending: Any = client.xpending(stored_batches.STREAM, group) if mine else None
        if pending and pending.get("pending"):
            oldest = stored_batches._id_key(str(pending["min"]))
        else:
            oldest = stored_batches._id_key(last_delivered)
            oldest = (oldest[0], oldest[1] + 1)  # the first entry after its last read
        index = bisect_left(self.ids, oldest)
        done = self.cumulative[index - 1] if index > 0 else 0
        if index >= len(self.ids):
            return done, 0.0
        return done, max(0.0, time.time() - self.ids[index][0] / 1000)


class IngestBacklog(Exception):
    """The ingest could not take a step's backlog in time: the ladder stops there."""


@dataclass
class Step:
    load: str
    offered: float  # readings/s asked for
    published: float = 0.0  # readings/s the broker acknowledged
    ingest: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    lags: dict[str, float] = field(default_factory=dict)
    projected: dict[str, float] = field(default_factory=dict)
    load_average: float = 0.0
    # The stretch of simulated time its readings covered (local wall clock), for one reading per message:
    # how full the meter-days were that the rollups recomputed.
    covered: str = ""

    @property
    def passed(self) -> bool:
        return all(lag < LAG_LIMIT_S for lag in self.lags.values()) and all(
            lag < LAG_LIMIT_S for lag in self.projected.values()
        )

    @property
    def limiting(self) -> str:
        return max(self.projected, key=lambda stage: self.projected[stage])


class Bench:
    def __init__(self, serials: list[str]) -> None:
        self.serials = serials
        self.watch = StreamWatch()
        username, password = hes_credentials()
        self.publisher = FastPublisher(
            broker_host(), broker_port(), f"bench-pipeline-{uuid.uuid4().hex[:6]}", username, password
        )
        self.published_readings = 0

    def lags(self, offered: float) -> dict[str, tuple[int, float]]:
        self.watch.poll()
        stored = self.watch.stored()
        backlog = max(0, self.published_readings - stored)
        out = {"ingest": (stored, backlog / offered if offered else 0.0)}
        for group in FOLLOWERS:
            out[group] = self.watch.frontier(group)
        return out

    def step(self, load: Load, offered: float, label: str) -> Step:
        messages_per_s = offered / load.readings_per_message
        first_ts = load.newest_ts()
        before = self.lags(offered)
        published_before = self.published_readings
        sent = 0
        started = time.monotonic()
        next_sample = started + SAMPLE_S
        bar = tqdm(
            total=STEP_S,
            desc=f"  {label} {offered:,.0f}/s",
            unit="s",
            bar_format="{l_bar}{bar}| {n:.0f}/{total}s {postfix}",
        )
        shown = 0
        samples: list[tuple[float, dict[str, tuple[int, float]]]] = [(0.0, before)]
        while (elapsed := time.monotonic() - started) < STEP_S:
            due = int(messages_per_s * elapsed) - sent
            if due > 0:
                self.publisher.send(load.take(due))
                sent += due
                self.published_readings += due * load.readings_per_message
            now = time.monotonic()
            if now >= next_sample:
                sample = self.lags(offered)
                samples.append((elapsed, sample))
                bar.set_postfix_str(" ".join(f"{stage} {lag:.0f}s" for stage, (_done, lag) in sample.items()))
                bar.update(int(elapsed) - shown)
                shown = int(elapsed)
                next_sample = now + SAMPLE_S
            time.sleep(TICK_S)
        elapsed = time.monotonic() - started
        after = self.lags(offered)
        samples.append((elapsed, after))
        bar.update(STEP_S - shown)
        bar.close()
        result = Step(load=label, offered=offered, load_average=os.getloadavg()[0])
        if not load.block:
            zone = local_zone()
            result.covered = f"{first_ts.astimezone(zone):%H:%M}-{load.newest_ts().astimezone(zone):%H:%M}"
        result.published = (self.published_readings - published_before) / elapsed
        arriving = result.published
        for stage in ("ingest", *FOLLOWERS):
            rate = _throughput([(at, sample[stage][0]) for at, sample in samples], elapsed)
            lag = after[stage][1]
            result.rates[stage] = rate
            result.lags[stage] = lag
            # Readings arrive at each stage at the rate the stage before it was given them: the
            # published rate for the ingest, the stored rate for the followers.
            behind = max(0.0, 1 - rate / arriving) if arriving else 0.0
            result.projected[stage] = lag + behind * (HORIZON_S - STEP_S)
            if stage == "ingest":
                arriving = rate
        result.ingest = result.rates["ingest"]
        return result

    def drain(self, offered: float) -> None:
        """Wait until every stage has caught up; past DRAIN_S, move lagging followers past their backlog."""
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            lags = self.lags(offered)
            if all(lag == 0.0 for _done, lag in lags.values()):
                return
            time.sleep(1.0)
        # The ingest's backlog cannot be skipped (it is in the broker): wait for it, then skip the
        # followers' (what they owe from a failed step says nothing about the next).
        ingest_deadline = time.monotonic() + INGEST_DRAIN_S
        while self.lags(offered)["ingest"][1] > 0:
            if time.monotonic() > ingest_deadline:
                raise IngestBacklog(
                    f"the ingest still had a backlog {INGEST_DRAIN_S} s after the step at {offered:,.0f}/s"
                )
            time.sleep(1.0)
        client = stored_batches.connection()
        for group in FOLLOWERS:
            if self.lags(offered)[group][1] > 0:
                client.xgroup_setid(stored_batches.STREAM, group, id="$")
                for entry in client.xpending_range(stored_batches.STREAM, group, min="-", max="+", count=100_000):
                    client.xack(stored_batches.STREAM, group, entry["message_id"])
        time.sleep(10)  # the runs at work finish their round

    def settle(self, load: Load, offered: float, timeout_s: float = 600.0) -> None:
        """One message from every meter at `offered` readings/s, then wait until every stage has finished
        it (nothing skipped): the switch between loads, outside the ladder."""
        messages_per_s = offered / load.readings_per_message
        started = time.monotonic()
        sent = 0
        while sent < len(self.serials):
            due = min(len(self.serials), int(messages_per_s * (time.monotonic() - started))) - sent
            if due > 0:
                self.publisher.send(load.take(due))
                sent += due
                self.published_readings += due * load.readings_per_message
            time.sleep(TICK_S)
        deadline = time.monotonic() + timeout_s
        while any(lag > 0.0 for _done, lag in self.lags(offered).values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the pipeline did not take the switch's {sent:,} messages in {timeout_s:.0f} s")
            time.sleep(1.0)

    def ladder(self, load: Load, start: float, goal: float, label: str) -> list[Step]:
        steps: list[Step] = []
        try:
            self._ladder(load, start, goal, label, steps)
        except IngestBacklog as stopped:
            print(f"    {label}: the ladder stops: {stopped}")
        return steps

    def _ladder(self, load: Load, start: float, goal: float, label: str, steps: list[Step]) -> None:
        passed: Step | None = None
        failed: Step | None = None
        rate = float(start)
        while rate <= goal * CLIMB_LIMIT:
            step = self.step(load, rate, label)
            steps.append(step)
            report(step)
            self.drain(rate)
            if not step.passed:
                failed = step
                break
            passed = step
            rate = rate * GROWTH
        # Failing from the first step: halve down (at most 3 times) to a rate that keeps up.
        while passed is None and failed is not None and failed.offered > start / 8:
            step = self.step(load, round(failed.offered / 2, -1), label)
            steps.append(step)
            report(step)
            self.drain(step.offered)
            if step.passed:
                passed = step
            else:
                failed = step
        for _ in range(BISECTIONS if failed is not None else 0):
            low = passed.offered if passed is not None else 0.0
            assert failed is not None
            rate = round((low + failed.offered) / 2, -2)
            if rate <= low or rate >= failed.offered:
                break
            step = self.step(load, rate, label)
            steps.append(step)
            report(step)
            self.drain(rate)
            if step.passed:
                passed = step
            else:
                failed = step

    def close(self) -> None:
        self.publisher.close()


def _throughput(done: list[tuple[float, int]], elapsed: float) -> float:
    """Readings a stage finished per second. A follower acknowledges a round at its end, so its count
    moves in steps: the rate is what it finished from the end of its first round in the window to the
    end of its last, over that time (over the whole window when it finished fewer than two rounds)."""
    changes = [(at, count) for (at, count), (_at, before) in zip(done[1:], done, strict=False) if count != before]
    if len(changes) >= 2 and changes[-1][0] - changes[0][0] >= elapsed / 3:
        return (changes[-1][1] - changes[0][1]) / (changes[-1][0] - changes[0][0])
    return (done[-1][1] - done[0][1]) / elapsed


def broker_host() -> str:
    from django.conf import settings

    return str(settings.MQTT_HOST)


def broker_port() -> int:
    from django.conf import settings

    return int(settings.MQTT_PORT)


def report(step: Step) -> None:
    stages = ", ".join(
        f"{stage} {step.rates[stage]:,.0f}/s lag {step.lags[stage]:.0f}s (5 min: {step.projected[stage]:.0f}s)"
        for stage in ("ingest", *FOLLOWERS)
    )
    verdict = "keeps up" if step.passed else f"falls behind ({step.limiting})"
    covered = f" (readings of {step.covered})" if step.covered else ""
    print(
        f"    {step.load} {step.offered:,.0f}/s offered{covered}, {step.published:,.0f}/s published: {stages}: {verdict}"
    )


def sustained(steps: list[Step]) -> tuple[float, str]:
    """The ingest rate of the highest step that kept up, and the stage that failed the lowest failing step."""
    kept = [step for step in steps if step.passed]
    failing = [step for step in steps if not step.passed]
    best = max((step.ingest for step in kept), default=0.0)
    limit = (
        min(failing, key=lambda step: step.offered).limiting
        if failing
        else "none reached (the ladder stopped climbing)"
    )
    return best, limit


# What each stage's rate is bound by, where it limits the pipeline (the measured figures go beside it).
_CAUSES = {
    ROLLUPS_GROUP: (
        "each round recomputes every meter-day its entries touched, whole, from the raw readings, so the more of "
        "its day a meter has sent, the more a recompute re-reads (all 96 intervals by the day's end): the cost per "
        "reading grows through the day (the table's last columns but one: the local times the step's readings "
        "covered), so a rate kept up early in a day may not be kept up late in it. An incremental rollup (a round's readings added to the stored day) would "
        "re-read about one reading per reading; it is not built: the daily rollup is one aggregation (quality "
        "counts, 15-minute demand, hourly arrays, estimates, edits and VEE flags merged) that the property tests "
        "prove exact under duplicates, late data and edits, and an incremental path would be a second "
        "implementation of it to prove equal"
    ),
    DETECT_GROUP: (
        "one solo worker on one core judges every reading (limits, then each meter's statistical baseline); "
        "its rate does not grow with the offered rate"
    ),
    OUTAGES_GROUP: "one solo worker applies every message's newest reading to each meter's last-seen record",
    "ingest": "one ingest worker parses, dedupes and stores every message",
}


def _shortfall(label: str, steps: list[Step], goal: float) -> str:
    rate, limit = sustained(steps)
    if rate >= goal:
        return f"- {label}: none, {rate:,.0f}/s kept up (goal {goal:,.0f}/s)."
    failing = [step for step in steps if not step.passed]
    if not failing:
        return f"- {label}: {rate:,.0f}/s kept up and the ladder stopped below the goal ({goal:,.0f}/s)."
    stage = limit
    rates = ", ".join(f"{step.rates[stage]:,.0f}/s at {step.offered:,.0f}/s offered" for step in failing)
    return (
        f"- {label} ({rate:,.0f}/s kept up, goal {goal:,.0f}/s): **{stage}**, which did {rates} in the steps that "
        f"failed; {_CAUSES.get(stage, '')}."
    )


def reset() -> None:
    """A clean start: no stream, no follower locks, counts or watermarks, no readings or rollups."""
    client = stored_batches.connection()
    client.delete(stored_batches.STREAM)
    # Ticks an earlier run's beat queued (the queues are Redis lists named after them).
    client.delete("celery", "ingest", *(name for name in PROCESSES if name != "beat"))
    for group in FOLLOWERS:
        client.delete(followers.LOCK_PREFIX + group, followers.COUNTS_PREFIX + group)
    # The bench's own PostgreSQL: incidents of an earlier run would weigh on this one's outage follower.
    IncidentMeter.objects.all().delete()
    OutageIncident.objects.all().delete()
    database = timeseries.db()
    for name in (
        timeseries.READINGS,
        timeseries.EVENTS,
        timeseries.ROLLUPS_DAILY,
        timeseries.ANOMALIES,
        timeseries.METER_LAST_SEEN,
        timeseries.FOLLOWER_WATERMARKS,
    ):
        database.drop_collection(name)
    timeseries.ensure_collections()


def wait_ready(bench: Bench, load: Load) -> None:
    """Ready when a probe interval published now is stored and every follower has finished it."""
    deadline = time.monotonic() + 180
    probed = 0.0
    stored_before = -1
    while time.monotonic() < deadline:
        lags = bench.lags(1.0)
        stored = bench.watch.stored()
        settled = stored > 0 and stored == stored_before and time.monotonic() - probed > 5
        stored_before = stored
        if settled and all(lags[group][1] == 0.0 for group in FOLLOWERS):
            # What was published before the worker subscribed is not delivered: count what was stored.
            bench.published_readings = bench.watch.stored()
            return
        if not bench.watch.stored() and time.monotonic() - probed > 5:
            # The next interval of every meter, again until the ingest worker has subscribed.
            bench.publisher.send(load.take(len(bench.serials)))
            probed = time.monotonic()
        time.sleep(1.0)
    raise RuntimeError("the stack did not take the probe interval within 180 s; see var/log/bench-pipeline-*.log")


def _iter_docs(
    load_start: dt.datetime, serials: list[str], *, block: bool, readings: int
) -> Iterator[tuple[str, bytes]]:
    messages = readings // (BLOCK if block else 1)
    probe = Load(serials, load_start, block=block)
    for n in range(messages):
        step, meter = divmod(n, len(serials))
        yield probe.topics[meter], probe._payload_of(step)


def run() -> dict[str, Any]:
    print(f"pipeline: {METERS:,} meters, steps of {STEP_S} s, lag limit {LAG_LIMIT_S:.0f} s at {HORIZON_S} s")
    broker.ensure_ingest_account()
    pairs = ensure_meters(METERS)
    serials = [serial for _pk, serial in pairs]
    pk_by_serial = {serial: pk for pk, serial in pairs}
    reset()
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    single_start = today - dt.timedelta(days=60)

    print("pipeline: MongoDB insert_many ceiling of the same documents")
    single_ceiling = mongo_insert_many_ceiling(
        documents_for(
            list(_iter_docs(single_start - dt.timedelta(days=5), serials, block=False, readings=50_000)), pk_by_serial
        )
    )
    block_ceiling = mongo_insert_many_ceiling(
        documents_for(
            list(_iter_docs(single_start - dt.timedelta(days=5), serials, block=True, readings=96_000)), pk_by_serial
        )
    )
    load_before = os.getloadavg()
    print(f"pipeline: insert_many {single_ceiling:,.0f}/s single, {block_ceiling:,.0f}/s blocks; starting the stack")
    # A SIGTERM (a stopped bench) stops the stack too: the finally below runs on SystemExit.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(f"pipeline: stopped by signal {_signum}"))
    processes = start_stack()
    bench = Bench(serials)
    single_steps: list[Step] = []
    block_steps: list[Step] = []
    rollup_counts_single: dict[str, int] = {}
    rollup_counts_all: dict[str, int] = {}
    incidents_single = incidents_block = incidents_switch = 0
    try:
        singles = Load(serials, single_start, block=False)
        wait_ready(bench, singles)
        print("pipeline: one reading per message")
        single_steps = bench.ladder(singles, SINGLE_START, SINGLE_GOAL, "single")
        rollup_counts_single = followers.counts(ROLLUPS_GROUP)
        incidents_single = IncidentMeter.objects.count()
        # The blocks start with the day after the last single reading: no jump in the stream's time
        # between the two loads (a jump would make every meter look silent to the outage follower).
        last_single = single_start + dt.timedelta(minutes=15 * (singles.position // len(serials) + 1))
        block_start = last_single.replace(hour=0, minute=0) + dt.timedelta(days=1)
        blocks = Load(serials, block_start, block=True)
        # The switch itself, which no real meter makes: a meter that sent each interval as it ended
        # has no slack, so the first block of the next day, by moving the stream's time a day on, makes
        # every meter whose own block has not come yet silent, and the outage follower puts it out
        # until that block restores it. One day of blocks from every meter, outside the ladder, settles
        # it; the meters put out from then on are the ones that count.
        print("pipeline: the switch to daily blocks: one day from every meter, then drained")
        bench.settle(blocks, BLOCK_START / 2)
        incidents_switch = IncidentMeter.objects.count() - incidents_single
        print("pipeline: daily interval blocks")
        block_steps = bench.ladder(blocks, BLOCK_START, BLOCK_GOAL, "block")
        rollup_counts_all = followers.counts(ROLLUPS_GROUP)
        incidents_block = IncidentMeter.objects.count() - incidents_single - incidents_switch
    finally:
        bench.close()
        stop_stack(processes)
    load_after = os.getloadavg()

    single_rate, single_limit = sustained(single_steps)
    block_rate, block_limit = sustained(block_steps)
    reread_single = _ratio(rollup_counts_single.get("reread", 0), rollup_counts_single.get("readings", 0))
    reread_block = _ratio(
        rollup_counts_all.get("reread", 0) - rollup_counts_single.get("reread", 0),
        rollup_counts_all.get("readings", 0) - rollup_counts_single.get("readings", 0),
    )
    bottleneck = f"single: {single_limit}; blocks: {block_limit}"
    results = {
        "pipeline_sustained_single_per_s": round(single_rate),
        "pipeline_sustained_block_per_s": round(block_rate),
        "pipeline_bottleneck": bottleneck,
        "pipeline_ceiling_mongo_single_per_s": round(single_ceiling),
        "pipeline_ceiling_mongo_block_per_s": round(block_ceiling),
        "pipeline_single_ratio_to_mongo_ceiling": round(single_rate / single_ceiling, 3),
        "pipeline_block_ratio_to_mongo_ceiling": round(block_rate / block_ceiling, 3),
        "pipeline_rollups_reread_per_reading_single": reread_single,
        "pipeline_rollups_reread_per_reading_block": reread_block,
        # Every meter reports all along: any meter put out of supply is a false outage of the replay.
        "pipeline_meters_put_out_single": incidents_single,
        "pipeline_meters_put_out_block": incidents_block,
        "pipeline_meters_put_out_switch": incidents_switch,
        "pipeline_load_average": round(max(load_before[0], load_after[0]), 1),
    }
    save_results(results)
    shortfalls = "\n".join(
        _shortfall(label, steps, goal)
        for label, steps, goal in (("one reading per message", single_steps, SINGLE_GOAL),
                                   ("daily blocks", block_steps, BLOCK_GOAL))
    )  # fmt: skip
    rows = "\n".join(
        f"| {s.load} | {s.offered:,.0f} | {s.published:,.0f} | "
        + " | ".join(f"{s.rates[g]:,.0f} / {s.lags[g]:.0f} s ({s.projected[g]:.0f} s)" for g in ("ingest", *FOLLOWERS))
        + f" | {'yes' if s.passed else 'no: ' + s.limiting} | {s.covered} | {s.load_average:.1f} |"
        for s in single_steps + block_steps
    )
    save_section(
        "15-pipeline",
        f"""
## The pipeline behind ingest (issue 13): every follower keeps up

`python -m bench pipeline`: the ingest worker, the rollup, detection and outage followers (one solo
worker each on its own queue) and beat, started from the Procfile's own command lines; {METERS:,} meters
publish through the real broker (QoS 1), one reading per message, then daily blocks of {BLOCK}. Steps of
{STEP_S} s; a stage's lag is the age of the oldest stored batch it has not finished (for the ingest, what was
published and not yet stored, over the rate). A step keeps up when every lag, measured at the step's end and
projected to {HORIZON_S} s from each stage's rate against its input (lag + (1 - rate/input) x {HORIZON_S - STEP_S} s),
stays under {LAG_LIMIT_S:.0f} s. The rate grows x{GROWTH} a step until one fails, then bisects {BISECTIONS} times.
(Steps of {HORIZON_S} s would make the ladder over an hour on 2 shared cores; the projection stands in for them.)

| figure | value | ceiling (same run) | ratio | goal |
|---|---|---|---|---|
| sustained, one reading per message | {single_rate:,.0f}/s | insert_many {single_ceiling:,.0f}/s | {single_rate / single_ceiling:.2f} | 5,000/s |
| sustained, daily blocks | {block_rate:,.0f}/s | insert_many {block_ceiling:,.0f}/s | {block_rate / block_ceiling:.2f} | 20,000/s |
| bottleneck | {bottleneck} | | | |
| rollups: readings re-read per reading stored | single {reread_single}, blocks {reread_block} | | | |

The rollup follower's cost: each round recomputes the meter-days its stream entries touched, whole,
from the raw readings; "re-read" is the intervals those meter-days hold after the recompute, over the
readings the entries stored (the follower's own totals, `mdms.core.followers.counts("rollups")`).
Every meter reports all along, so none should ever be put out of supply: the outage follower put
{incidents_single:,} meters out during the single readings and {incidents_block:,} during the blocks (silence
measured on the stream's clock, `monitoring.selectors.silence_now`). Between the two loads, the switch
from one reading per message to daily blocks (which no real meter makes) is settled outside the ladder:
one day of blocks from every meter, drained. A meter that sent each interval as it ended has no slack,
so the first block of the next day makes every meter whose block has not come yet silent by the
stream's time; the follower put {incidents_switch:,} meters out there, each restored by its own block.

Where a goal is missed, the stage that failed first is the cause, as measured:
{shortfalls}

Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (other helpers' tests and benches share the 2 cores).

| load | offered/s | published/s | ingest: rate / lag (5 min) | rollups | detect | outages | keeps up | readings of (local time) | load avg |
|---|---|---|---|---|---|---|---|---|---|
{rows}
""",
    )
    return results


def _ratio(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 2) if denominator else 0.0
