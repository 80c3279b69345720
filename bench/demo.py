"""Time to a full demo (issue 13): `make run` from scratch until the dashboards show their history.

What `make run` does, on databases of the bench's own (the bench's PostgreSQL and MongoDB names with
`_demo` appended, both dropped first, and the bench's Redis database, emptied first), on this
checkout's broker and a free web port: migrate, mqtt_sync, seed_demo --if-empty --meters
DEMO_METERS, then the Procfile under honcho (web, workers, followers, beat, the simulator with its
DEMO_HISTORY_DAYS of history, made in bulk and stored through the ingest pipeline: --backfill-via
pipeline, ingest.simulator.history). The Procfile is the real one with only the web port, the beat
schedule file and the simulator's state and label files moved to the bench's own.

Measured:
- demo_start_to_healthz_s: from the start of `make run`'s steps until /healthz answers 200;
- demo_history_ready_s: from /healthz answering 200 until the history is on the dashboards: every
  seeded premise has a daily rollup (of its meter, or of the meter an exchange put in that day) for
  each of the consumer chart's last CONSUMER_DAYS local days
  (which hold the operator's 30-day region chart and its 7-day hourly chart), and the rollup
  follower has no stored batch left to do. Polled every POLL_S seconds; after READY_LIMIT_S the
  bench stops and reports the coverage reached instead (demo_history_ready_s is then null).
- demo_history_complete_s: from /healthz answering 200 until the simulator reports its history done
  (stored, rolled up, and its outages replayed as past incidents);
- what each stage of the history cost, as the simulator reports it when its history is stored (its
  `history: ...` line in the stack's log): readings made, wall time to make and store them, the meter
  model's CPU, parsing and storing, rollups, the outages' replay.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tqdm import tqdm

from bench.common import ROOT, save_results, save_section

DEMO_METERS = int(os.environ.get("DEMO_METERS", "200"))
DEMO_HISTORY_DAYS = int(os.environ.get("DEMO_HISTORY_DAYS", "190"))
CONSUMER_DAYS = 183  # the consumer dashboard's 6 months
POLL_S = 10.0
READY_LIMIT_S = float(os.environ.get("DEMO_READY_LIMIT_S", "1500"))
GOAL_S = 300
# After the rollups are complete, how long the bench waits for the simulator to report its history done.
HISTORY_DONE_WAIT_S = 180.0


def _seconds(at: float | None, since: float) -> str:
    return f"{at - since:.0f} s" if at is not None else "not reported"


def _share(figures: dict[str, float], name: str) -> str:
    """A stage's time against the wall time of the history in all its processes."""
    if name not in figures or not figures.get("stored_s"):
        return "-"
    return f"{figures[name] / (figures['stored_s'] * figures.get('workers', 1)):.0%}"


def _figure(figures: dict[str, float], name: str) -> str:
    return f"{figures[name]:,.0f}" if name in figures else "-"


def _suffixed(url: str, suffix: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}{suffix}"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _procfile(web_port: int, run_dir: Path) -> Path:
    """The real Procfile, with the web port, the beat schedule and the simulator's files moved to the bench's own."""
    text = (ROOT / "Procfile").read_text()
    text = text.replace("127.0.0.1:8000", f"127.0.0.1:{web_port}")
    text = text.replace("var/run/celerybeat-schedule", str(run_dir / "celerybeat-schedule"))
    text = text.replace("var/simulator-state.json", str(run_dir / "simulator-state.json"))
    text = text.replace("var/log/simulator-faults.jsonl", str(run_dir / "simulator-faults.jsonl"))
    path = run_dir / "Procfile"
    path.write_text(text)
    return path


def _own_broker(run_dir: Path, env: dict[str, str]) -> Path:
    """A Mosquitto of the demo's own, configured as this checkout's (its accounts copied) on free ports:
    the demo's ingest must not share a subscription with another stack's on the checkout's broker."""
    source = ROOT / "var" / "mosquitto"
    here = run_dir / "mosquitto"
    if here.exists():
        shutil.rmtree(here)
    here.mkdir(parents=True)
    shutil.copy(source / "dynamic-security.json", here / "dynamic-security.json")
    plain, tls = _free_port(), _free_port()
    lines: list[str] = []
    ports = [plain, tls]  # the plain listener comes first, then the TLS one
    for line in (source / "mosquitto.conf").read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key == "listener":
            line = f"listener {ports.pop(0)} 127.0.0.1"
        elif key in ("plugin_opt_config_file", "persistence_location", "pid_file", "log_dest"):
            target = {"plugin_opt_config_file": here / "dynamic-security.json", "persistence_location": f"{here}/",
                      "pid_file": here / "mosquitto.pid", "log_dest": f"file {here / 'mosquitto.log'}"}[key]  # fmt: skip
            line = f"{key} {target}"
        lines.append(line)
    (here / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    subprocess.run(["mosquitto", "-c", str(here / "mosquitto.conf"), "-d"], check=True, capture_output=True)
    env["MQTT_PORT"], env["MQTT_TLS_PORT"] = str(plain), str(tls)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", plain)) == 0:
                break
        time.sleep(0.2)
    return here / "mosquitto.pid"


def _stop_broker(pid_file: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text()), signal.SIGTERM)


def _fresh_databases(env: dict[str, str]) -> None:
    """Drop and create the demo's PostgreSQL database, drop its MongoDB database, empty its Redis database."""
    import psycopg
    import pymongo
    import redis

    db = urlsplit(env["DATABASE_URL"])
    name = db.path.lstrip("/")
    with psycopg.connect(
        host=db.hostname, port=db.port or 5432, user=db.username, password=db.password, dbname="postgres",
        autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(env["MONGODB_URI"])
    mongo.drop_database(mongo.get_default_database().name)
    mongo.close()
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def _healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return int(response.status) == 200
    except OSError:
        return False


_PROBE = """
import datetime as dt, json, django
django.setup()
from billing.rollups import GROUP
from mdms.core import stored_batches
from mdms.core.localtime import local_today
from mdms.core.models import MeterInstallation
from mdms.core.timeseries import ROLLUPS_DAILY, READINGS, collection
today = local_today()
first = today - dt.timedelta(days={days})
# The demo's premises, each with its meters: a premise whose meter was exchanged has the old meter's
# days before the exchange and the new one's after.
premise_of = dict(
    MeterInstallation.objects.filter(meter__serial__regex=r"^MTR[0-9]{{6}}").values_list("meter_id", "premise_id")
)
premises = len(set(premise_of.values()))
covered = {{
    (premise_of[doc["meter"]], doc["day"])
    for doc in collection(ROLLUPS_DAILY).find(
        {{"meter": {{"$in": list(premise_of)}}, "day": {{"$gte": first.isoformat(), "$lt": today.isoformat()}}}},
        {{"meter": 1, "day": 1, "_id": 0}},
    )
}}
newest = collection(READINGS).find_one({{}}, sort=[("ts", -1)], projection={{"ts": 1}})
print(json.dumps({{"docs": len(covered), "expected": premises * {days}, "backlog": stored_batches.backlog(GROUP),
    "newest": newest["ts"].isoformat() if newest else None}}))
"""


def _coverage(env: dict[str, str]) -> dict[str, Any]:
    """The rollups the dashboards need, as the demo's own code reads them (a subprocess on its databases)."""
    import json

    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(days=CONSUMER_DAYS)],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "mdms.settings"},
        check=True,
        capture_output=True,
    )
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


def simulator_cost_per_reading() -> float:
    """Seconds of one core the simulator's meter model takes per reading it makes (3 meters, 5 days each)."""
    from django.conf import settings

    from ingest.management.commands.simulate_meters import profiles
    from ingest.simulator.faults import FaultPlan
    from ingest.simulator.meter import SimulatedMeter

    made, spent = 0, 0.0
    end = dt.datetime.now(dt.UTC)
    meter_profiles, _known = profiles([f"MTR{n:06d}" for n in range(1, 4)], seed=2026, solar_share=0.2)
    for profile in meter_profiles:
        meter = SimulatedMeter(profile, 2026, 900, FaultPlan.parse("0.02"), settings.TIME_ZONE)
        started = time.process_time()
        emissions, _began = meter.advance(end - dt.timedelta(days=5), end)
        spent += time.process_time() - started
        made += sum(1 for emission in emissions if emission.kind.value == "readings")
    return spent / made


_HISTORY_LINE = re.compile(
    r"history: (?P<readings>[\d,]+) readings of (?P<meters>\d+) meters made in (?P<workers>\d+) processes and "
    r"stored in (?P<stored_s>\d+) s .*meter model (?P<model_s>\d+) s of CPU, parsing (?P<parse_s>\d+) s, "
    r"writes (?P<write_s>\d+) s, rollups (?P<rollups_s>\d+) s .*outages (?P<outages_s>[\d.]+) s"
)


def _history_line(log: Path) -> tuple[str, dict[str, float]]:
    """The simulator's account of its history (the last one in the stack's log), and its figures."""
    found = list(_HISTORY_LINE.finditer(log.read_text(errors="replace")))
    if not found:
        return "", {}
    last = found[-1]
    return last.group(0), {name: float(value.replace(",", "")) for name, value in last.groupdict().items()}


def run() -> dict[str, Any]:
    run_dir = ROOT / "var" / "bench-demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("simulator-state.json", "simulator-faults.jsonl", "celerybeat-schedule"):
        (run_dir / stale).unlink(missing_ok=True)
    web_port = _free_port()
    env = dict(os.environ)
    env["DATABASE_URL"] = _suffixed(os.environ["DATABASE_URL"], "_demo")
    env["MONGODB_URI"] = _suffixed(os.environ["MONGODB_URI"], "_demo")
    env["DEMO_HISTORY_DAYS"] = str(DEMO_HISTORY_DAYS)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # Redis: the bench's database unless DEMO_REDIS_DB names another (to run beside another bench).
    if os.environ.get("DEMO_REDIS_DB"):
        env["REDIS_URL"] = urlunsplit(urlsplit(env["REDIS_URL"])._replace(path=f"/{int(os.environ['DEMO_REDIS_DB'])}"))
    broker_pid = _own_broker(run_dir, env)
    print(f"demo: make run from scratch, {DEMO_METERS} meters, {DEMO_HISTORY_DAYS} days of history, web on {web_port}")
    _fresh_databases(env)
    load_before = os.getloadavg()
    # The simulator makes the history it sends, reading by reading: its cost alone bounds how soon
    # the history can be stored (CPU time of one process, whatever else the machine does).
    per_reading = simulator_cost_per_reading()
    history_readings = DEMO_METERS * DEMO_HISTORY_DAYS * 96
    floor_s = per_reading * history_readings
    print(f"demo: the simulator's meter model takes {per_reading * 1e6:.0f} us of CPU per reading: "
          f"{floor_s:.0f} s for the {history_readings:,} readings of the history")  # fmt: skip
    started = time.monotonic()
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "mqtt_sync")
    _manage(env, "seed_demo", "--if-empty", "--meters", str(DEMO_METERS))
    log = open(run_dir / "honcho.log", "wb")  # noqa: SIM115 - lives as long as the stack
    stack = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "honcho"), "-f", str(_procfile(web_port, run_dir)), "-d", str(ROOT), "start"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    healthy_at: float | None = None
    ready_at: float | None = None
    complete_at: float | None = None
    coverage: dict[str, Any] = {}
    samples: list[tuple[float, dict[str, Any]]] = []
    try:
        while time.monotonic() - started < 300 and not _healthz(web_port):
            if stack.poll() is not None:
                raise RuntimeError(f"the stack stopped; see {run_dir / 'honcho.log'}")
            time.sleep(0.5)
        healthy_at = time.monotonic()
        print(f"demo: /healthz 200 after {healthy_at - started:.0f} s; waiting for the history's rollups")
        with tqdm(total=DEMO_METERS * CONSUMER_DAYS, desc="  premise-days rolled up", unit="day") as bar:
            while time.monotonic() - healthy_at < READY_LIMIT_S:
                coverage = _coverage(env)
                samples.append((time.monotonic() - healthy_at, coverage))
                bar.n = min(coverage["docs"], bar.total)
                bar.set_postfix_str(f"rollup backlog {coverage['backlog']}")
                bar.refresh()
                if 0 < coverage["expected"] <= coverage["docs"] and coverage["backlog"] == 0:
                    ready_at = time.monotonic()
                    break
                time.sleep(POLL_S)
        # The rest of the history's work (its outages replayed as incidents), until the simulator says
        # it is done: its account of each stage goes into the section.
        while ready_at is not None and time.monotonic() - ready_at < HISTORY_DONE_WAIT_S:
            if _history_line(run_dir / "honcho.log")[0]:
                complete_at = time.monotonic()
                break
            time.sleep(1.0)
    finally:
        # The stack may have stopped on its own (the error above says why): nothing left to signal then.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stack.pid, signal.SIGTERM)
        try:
            stack.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(stack.pid, signal.SIGKILL)
            stack.wait(10)
        _stop_broker(broker_pid)
    load_after = os.getloadavg()
    log.close()
    history_line, history = _history_line(run_dir / "honcho.log")
    assert healthy_at is not None
    ready_s = round(ready_at - healthy_at) if ready_at is not None else None
    reached = coverage.get("docs", 0) / max(1, coverage.get("expected", 1))
    results = {
        "demo_history_ready_s": ready_s,
        "demo_start_to_healthz_s": round(healthy_at - started),
        "demo_history_coverage_at_end": round(reached, 4),
        "demo_load_average": round(max(load_before[0], load_after[0]), 1),
        "demo_simulator_cpu_us_per_reading": round(per_reading * 1e6),
        "demo_history_generation_cpu_s": round(floor_s),
        "demo_history_made_and_stored_s": history.get("stored_s"),
        "demo_history_complete_s": round(complete_at - healthy_at) if complete_at is not None else None,
    }
    save_results(results)
    trail = "\n".join(
        f"| {at:.0f} | {s['docs']:,} / {s['expected']:,} | {s['backlog']:,} | {s['newest'] or '-'} |"
        for at, s in samples[:: max(1, len(samples) // 20)] + samples[-1:]
    )
    verdict = (
        f"{ready_s} s after /healthz (goal {GOAL_S} s)"
        if ready_s is not None
        else f"not within {READY_LIMIT_S:.0f} s: {reached:.1%} of the meter-days were rolled up by then"
    )
    save_section(
        "60-demo",
        f"""
## Time to a full demo (issue 13)

`python -m bench demo`: `make run`'s steps from scratch (migrate, mqtt_sync, seed_demo, the Procfile under honcho)
on fresh databases of the bench's own, {DEMO_METERS} meters and {DEMO_HISTORY_DAYS} days of history sent by the
simulator. Ready when every premise has a daily rollup for each of the last {CONSUMER_DAYS} days (the consumer's
6-month chart, which holds the operator's 30-day and 7-day region charts) and the rollup follower has nothing left
(a premise whose meter was exchanged counts with the old meter's days and the new one's).

| figure | value | goal |
|---|---|---|
| demo_start_to_healthz_s | {round(healthy_at - started)} s | |
| demo_history_ready_s | {verdict} | {GOAL_S} s |
| demo_history_complete_s: the simulator reports its history done, past outages replayed as incidents | {_seconds(complete_at, healthy_at)} after /healthz | |
| the simulator's CPU per reading it makes (meter model) | {per_reading * 1e6:.0f} us | |
| CPU the simulator needs to make the {history_readings:,} readings of the history | {floor_s:.0f} s | |

The history is made by the simulator (the Procfile's `meters`, `--backfill-days --backfill-via pipeline`:
ingest/simulator/history.py) with the meter model in {history.get("workers", 2):.0f} processes, each
meter's messages going through the ingest pipeline's own parsing, dedupe and storage; each 8-day stretch
is rolled up as it is stored, then the outages of the whole history are replayed, and the last 2 days are
judged by detection in the background. The meter model's CPU per reading, measured above in the same run,
times the readings is a floor under the time the history needs to exist at all in one process.

What each stage took, as the simulator reported it (CPU and wall seconds are summed over its processes):

| stage | seconds | share of the processes' time |
|---|---|---|
| made, stored and rolled up (wall, from the simulator's start) | {_figure(history, "stored_s")} | |
| making: the meter model (CPU) | {_figure(history, "model_s")} | {_share(history, "model_s")} |
| making: messages parsed and admitted into batches (wall) | {_figure(history, "parse_s")} | {_share(history, "parse_s")} |
| writer: dedupe and MongoDB's writes (pipeline.flush, wall) | {_figure(history, "write_s")} | {_share(history, "write_s")} |
| writer: rollups of each stretch (wall) | {_figure(history, "rollups_s")} | {_share(history, "rollups_s")} |
| the outages' replay (power events to incidents) | {_figure(history, "outages_s")} | |

Each process makes its meters' readings on one thread and hands the writes and rollups, in order, to a writer
thread (one batch in flight): the two overlap, and the busier of them bounds the time. A writer busy nearly all
the time (writes and rollups together near 100 %) means MongoDB's share of the two cores is the bound, as it is
when other work shares them; the making threads' share says how much the meter model and the parser cost.

`{history_line or "the simulator reported no history line (see var/bench-demo/honcho.log)"}`

Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (other helpers share the 2 cores).

| s after /healthz | premise-days rolled up | rollup backlog (entries) | newest reading stored |
|---|---|---|---|
{trail}
""",
    )
    return results
