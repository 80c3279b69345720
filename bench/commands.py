"""Commands to meters: how many complete per second, and how closely the fleet-wide throttle holds.

200 simulated meters (the meter simulator, each with its own broker account and connection)
answer over the project's Mosquitto; the real ingest worker stores their replies; the real
dispatcher (commands.dispatcher) sends and follows. Two runs:
1. throughput: 5 reads per meter (1,000 commands) with the throttle out of the way (10,000/s);
   commands to one meter go one at a time, so this is the round trip the whole pipeline allows
   (dispatch -> broker -> meter -> broker -> ingest -> MongoDB -> dispatcher);
2. throttle: one clock sync per meter at COMMANDS_BENCH_RATE (50/s): the rate achieved between the
   first and the last send, against the rate asked for.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from django.db.models import Max, Min

from bench.common import save_results, save_section
from commands.dispatcher import Dispatcher
from commands.kinds import Kind
from commands.models import MeterCommand
from commands.services import command_request
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.profiles import profile_for
from ingest.simulator.runner import Fleet
from ingest.testing import RunningWorker, drop_session
from mdms.core.models import Meter
from mdms.core.mqtt import broker
from mdms.core.services import meter_issue_credentials, meter_register, meter_set_status

METERS = 200
READS_PER_METER = 5
THROTTLE_RATE = 50.0
PREFIX = "CMB"
TIMEOUT_S = 300.0


def _meters() -> dict[str, tuple[Meter, str]]:
    """The bench's meters with broker accounts; passwords are set anew on every run."""
    found: dict[str, tuple[Meter, str]] = {}
    for n in range(METERS):
        serial, password = f"{PREFIX}{n:05d}", f"bench-{n:05d}-pw"
        meter = Meter.objects.filter(serial=serial).first()
        if meter is None:
            meter, _ = meter_register(serial=serial, password=password)
            meter_set_status(meter=meter, status=Meter.Status.ACTIVE)
        else:
            meter_issue_credentials(meter=meter, password=password)
        found[serial] = (meter, password)
    return found


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench commands: timed out waiting for {what}")
        time.sleep(0.2)


def _finished(pks: list[int]) -> int:
    return MeterCommand.objects.filter(pk__in=pks, status__in=MeterCommand.FINAL).count()


def _run_with_dispatcher(rate: float, requests: list[tuple[Meter, Kind]]) -> tuple[list[int], float]:
    """Queue the commands, then let a dispatcher at `rate` send and follow them; (pks, seconds)."""
    pks = [command_request(meter=meter, kind=kind, send_now=False)[0].pk for meter, kind in requests]
    dispatcher = Dispatcher(rate_per_s=rate)
    thread = threading.Thread(target=dispatcher.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        _wait(lambda: _finished(pks) == len(pks), f"{len(pks)} commands to finish")
    finally:
        dispatcher.stop()
        thread.join(30)
    return pks, time.perf_counter() - started


def run() -> dict[str, Any]:
    broker.ensure_ingest_account()
    MeterCommand.objects.filter(meter__serial__startswith=PREFIX).delete()
    meters = _meters()
    fleet = Fleet(
        [SimulatedMeter(profile_for(serial, seed=7, has_solar=False), 7) for serial in meters],
        {serial: password for serial, (_, password) in meters.items()},
        session_expiry_s=0,
    )
    live = fleet.connect(timeout_s=60)
    if len(live) != METERS:
        raise RuntimeError(f"bench commands: only {len(live)} of {METERS} meters connected")
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            fleet.pump(0.01)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    worker = RunningWorker("bench-commands", session_expiry_s=0)
    try:
        print(f"commands: {METERS} simulated meters connected; {METERS * READS_PER_METER:,} reads")
        reads = [(meter, Kind.READ) for _ in range(READS_PER_METER) for meter, _ in meters.values()]
        pks, seconds = _run_with_dispatcher(10_000.0, reads)
        completed = MeterCommand.objects.filter(pk__in=pks, status=MeterCommand.Status.COMPLETED).count()
        per_s = completed / seconds
        print(f"commands: {completed:,} of {len(pks):,} completed in {seconds:.1f} s = {per_s:,.0f}/s")

        syncs = [(meter, Kind.TIME_SYNC) for meter, _ in meters.values()]
        pks, _ = _run_with_dispatcher(THROTTLE_RATE, syncs)
        span = MeterCommand.objects.filter(pk__in=pks).aggregate(first=Min("sent_at"), last=Max("sent_at"))
        sent_span_s = (span["last"] - span["first"]).total_seconds()
        achieved = (len(pks) - 1) / sent_span_s
        accuracy = achieved / THROTTLE_RATE
        print(f"commands: throttle {THROTTLE_RATE:.0f}/s achieved {achieved:.2f}/s ({accuracy:.3f})")
    finally:
        worker.stop()
        drop_session(worker.worker.client_id)
        stop.set()
        pumping.join(10)
        fleet.close()

    results = {
        "commands_completed_per_s": round(per_s, 1),
        "commands_completed": completed,
        "commands_throttle_rate_per_s": THROTTLE_RATE,
        "commands_throttle_achieved_per_s": round(achieved, 2),
        "commands_throttle_accuracy": round(accuracy, 3),
    }
    save_results(results)
    at = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    save_section(
        "80-commands",
        f"""
## Commands to meters (`python -m bench commands`, {at})

{METERS} simulated meters, each on its own broker connection, answer commands (acknowledge, then
complete); the real ingest worker stores the replies and the real dispatcher follows them.

| figure | value |
|---|---|
| reads completed per second, {METERS * READS_PER_METER:,} reads, one at a time per meter (`commands_completed_per_s`) | **{per_s:,.0f}/s** ({completed:,} of {METERS * READS_PER_METER:,} completed) |
| throttle asked (`commands_throttle_rate_per_s`) | {THROTTLE_RATE:.0f}/s |
| throttle achieved between first and last send (`commands_throttle_achieved_per_s`) | {achieved:.2f}/s |
| accuracy (`commands_throttle_accuracy`, achieved / asked) | {accuracy:.3f} |

The completion rate is the round trip the pipeline allows per meter (dispatcher -> broker -> meter
-> broker -> ingest batch -> MongoDB -> the dispatcher's next look at the replies, every 0.25 s at
most), times the meters in parallel; the throttle never lets the fleet exceed its rate (it is a
cell rate on Redis's clock), so its accuracy can only fall short, by the dispatcher's own pauses.
""",
    )
    return results
