"""Simulated meters over MQTT: the demo's data source and the benchmarks' load.

    manage.py simulate_meters --meters 200                          # real time, until Ctrl-C
    manage.py simulate_meters --from 2026-05-01 --to 2026-11-01     # backfill, months in minutes
    manage.py simulate_meters --faults 0.05 --labels var/faults.jsonl --seed 7
    manage.py simulate_meters --backfill-days 190 --backfill-via pipeline --state var/simulator-state.json

With --backfill-days, real time begins with the days the meters missed, sent at full speed over the
broker (--backfill-via broker), or, for the demo's months of history, made in bulk and stored through
the ingest pipeline's own code, rolled up and turned into past incidents in this process
(--backfill-via pipeline: ingest.simulator.history), in --history-workers processes; the meters then
go on over the broker from exactly where their history stopped.

Each meter logs in with its own credentials from the provisioning CSV (seed_demo writes
var/demo-meters.csv): a password on the broker's MQTT port, or, for a row with `certificate` and
`key` files, its client certificate on the TLS listener (settings.MQTT_TLS_PORT). Faults are
labelled in --labels for scoring detection. Life events too (issue 16): some meters start with their
register near its capacity and wrap, and a planned meter exchange is done through the MDMS's own
service (core.services.meter_exchange): the new meter's row replaces the old one in the credentials
file, and it carries on sending from the exchange moment.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import json
import logging
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from ingest.simulator import history
from ingest.simulator.faults import Fault, FaultKind, FaultPlan, LabelWriter
from ingest.simulator.meter import SimulatedMeter
from ingest.simulator.profiles import MeterProfile, profile_for
from ingest.simulator.runner import (
    Behaviour,
    Fleet,
    MeterLogin,
    describe,
    read_credentials,
    run_accelerated,
    run_realtime,
)
from mdms.config import VAR_DIR
from mdms.core import services
from mdms.core.localtime import local_zone
from mdms.core.models import Meter
from mdms.core.reading_fields import DEFAULT_INTERVAL_S

logger = logging.getLogger(__name__)

DEFAULT_CREDENTIALS = VAR_DIR / "demo-meters.csv"


def _date(value: str) -> dt.datetime:
    """A date (local midnight in TIME_ZONE) or an ISO date-time with an offset."""
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=local_zone())
    return when.astimezone(dt.UTC)


def profiles(serials: list[str], *, seed: int, solar_share: float) -> tuple[list[MeterProfile], int]:
    """Profiles for the serials, from the meter registry where it knows them; (profiles, known)."""
    known: dict[str, Meter] = {}
    try:
        known = {m.serial: m for m in Meter.objects.filter(serial__in=serials).select_related("premise__feeder")}
    except DatabaseError as exc:
        logger.warning("meter registry not available (%s): households drawn from --solar-share", exc)
    result = []
    for serial in serials:
        meter = known.get(serial)
        if meter is None:
            result.append(profile_for(serial, seed=seed, solar_share=solar_share))
            continue
        result.append(
            profile_for(
                serial,
                seed=seed,
                has_solar=meter.has_solar,
                solar_capacity_kw=float(meter.solar_capacity_kw) if meter.solar_capacity_kw else None,
                nominal_voltage_v=float(meter.nominal_voltage_v),
                nominal_frequency_hz=float(meter.nominal_frequency_hz),
                rated_current_a=float(meter.rated_current_a),
                feeder=meter.premise.feeder.code if meter.premise else "",
            )
        )
    return result, len(known)


class MdmsExchanger:
    """A planned meter exchange, done as a field technician's work order would be: through the MDMS's
    service (the old meter's final register as it shows, the new one's from 0, audited as `simulator`),
    and the new meter's login written into the credentials file in place of the old one's."""

    def __init__(self, credentials: Path) -> None:
        self.credentials = credentials

    def __call__(self, meter: SimulatedMeter, exchange: Fault) -> MeterLogin | None:
        old = Meter.objects.filter(serial=meter.serial).select_related("premise").first()
        if old is None or old.premise is None:
            logger.warning("meter %s: not installed in the registry, not exchanged", meter.serial)
            return None
        new_serial = f"{meter.serial}-X{exchange.start:%y%m%d%H%M}"[:32]
        final_import, _final_export = meter.shown_registers()
        _record, credentials = services.meter_exchange(
            premise=old.premise,
            old_meter=old,
            new_meter_serial=new_serial,
            at=exchange.start,
            old_final_register_kwh=Decimal(str(final_import)),
            new_initial_register_kwh=Decimal("0"),
            work_order=f"SIM-{meter.serial}-{exchange.start:%Y%m%d}",
            via="simulator",
        )
        assert credentials.mqtt_password is not None
        login = MeterLogin(serial=new_serial, password=credentials.mqtt_password)
        self._replace_row(meter.serial, login)
        return login

    def _replace_row(self, old_serial: str, login: MeterLogin) -> None:
        # The history's worker processes exchange meters at once: one rewrite of the file at a time.
        with self.credentials.with_suffix(".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._rewrite(old_serial, login)

    def _rewrite(self, old_serial: str, login: MeterLogin) -> None:
        with self.credentials.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or ["serial", "password"])
            rows = list(reader)
        for row in rows:
            if row.get("serial", "").strip() == old_serial:
                row.update(dict.fromkeys(fields, ""), serial=login.serial, password=login.password)
        temporary = self.credentials.with_suffix(".tmp")
        with temporary.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        temporary.replace(self.credentials)


def _plans_exchanges(plan: FaultPlan) -> bool:
    return plan.rates.get(FaultKind.METER_EXCHANGE, 0.0) > 0 or any(
        fault.kind is FaultKind.METER_EXCHANGE for fault in plan.explicit
    )


def _write_state(path: Path, states: dict[str, Any]) -> None:
    """The meters' states, replaced at once (a crash leaves the previous file whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(states))
    temporary.replace(path)


def _register_capacities(serials: list[str]) -> dict[str, float]:
    try:
        return {m.serial: m.register_capacity_kwh for m in Meter.objects.filter(serial__in=serials)}
    except DatabaseError:
        return {}


class Command(BaseCommand):
    help = "Run simulated meters that publish readings and events over MQTT and answer on-demand reads."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--meters", type=int, default=None, help="the first N meters of the credentials file")
        parser.add_argument(
            "--credentials", type=Path, default=DEFAULT_CREDENTIALS,
            help="CSV serial,password[,certificate,key]: a row with a certificate logs in with it over TLS",
        )  # fmt: skip
        parser.add_argument("--speed", choices=["realtime", "max"], default=None)
        parser.add_argument("--from", dest="start", type=_date, help="backfill start (date or ISO date-time)")
        parser.add_argument("--to", dest="end", type=_date, help="backfill end (default: now)")
        parser.add_argument("--interval-s", type=int, default=DEFAULT_INTERVAL_S)
        parser.add_argument("--faults", default="0", help="faults per meter per day for every kind, or a plan file")
        parser.add_argument("--labels", type=Path, default=None, help="JSONL file of injected faults")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--solar-share", type=float, default=0.15, help="for meters unknown to the registry")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--state", type=Path, default=None,
            help="JSON file of each meter's registers and last interval: a restart carries on from it",
        )  # fmt: skip
        parser.add_argument(
            "--command-behaviour", action="append", default=[], metavar="SERIAL=BEHAVIOUR",
            help="how a meter treats commands: answer (default), refuse, late or never; repeatable",
        )  # fmt: skip
        parser.add_argument(
            "--backfill-days", type=int, default=0,
            help="real time only: first send the last N days (or, with --state, what was missed since) at full speed",
        )  # fmt: skip
        parser.add_argument(
            "--backfill-via", choices=["broker", "pipeline"], default="broker",
            help="broker: publish the backfill over MQTT; pipeline: store it in bulk through the ingest "
            "pipeline's code, roll it up and replay its outages here (the demo's history), then go on over MQTT",
        )  # fmt: skip
        parser.add_argument(
            "--history-workers", type=int, default=history.WORKERS,
            help="processes that make and store a --backfill-via pipeline history (meters are shared among them)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        speed = options["speed"] or ("max" if options["start"] else "realtime")
        interval_s: int = options["interval_s"]
        if interval_s <= 0 or 86400 % interval_s:
            raise CommandError("--interval-s must divide a day (900, 1800, 3600, ...)")
        if speed == "realtime" and (options["start"] or options["end"]):
            raise CommandError("--from/--to are for a backfill (--speed max); real time starts now")
        if speed == "max" and not options["start"]:
            raise CommandError("--speed max needs --from (and optionally --to)")
        start: dt.datetime | None = options["start"]
        end: dt.datetime = options["end"] or dt.datetime.now(tz=dt.UTC)
        if start is not None and start >= end:
            raise CommandError("--from must come before --to")
        if not options["credentials"].exists():
            raise CommandError(f"{options['credentials']} not found (manage.py seed_demo writes one)")
        try:
            plan = FaultPlan.parse(options["faults"])
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(f"--faults: {exc}") from exc

        credentials = read_credentials(options["credentials"], options["meters"])
        if not credentials:
            raise CommandError(f"no meters in {options['credentials']}")
        meter_profiles, known = profiles(
            [login.serial for login in credentials],
            seed=options["seed"],
            solar_share=options["solar_share"],
        )
        capacities = _register_capacities([profile.serial for profile in meter_profiles])
        meters = [
            SimulatedMeter(
                profile, options["seed"], interval_s, plan, settings.TIME_ZONE,
                register_capacity_kwh=capacities.get(profile.serial, 100_000.0),
            )
            for profile in meter_profiles
        ]  # fmt: skip
        state_file: Path | None = options["state"]
        saved = json.loads(state_file.read_text()) if state_file and state_file.exists() else {}
        for meter in meters:
            if meter.serial in saved:
                meter.resume(saved[meter.serial])
        behaviours: dict[str, Behaviour] = {}
        for spec in options["command_behaviour"]:
            serial, _, name = spec.partition("=")
            try:
                behaviours[serial.strip()] = Behaviour(name.strip())
            except ValueError:
                choices = ", ".join(b.value for b in Behaviour)
                raise CommandError(f"--command-behaviour {spec!r}: say SERIAL=BEHAVIOUR, one of {choices}") from None
        exchanger = MdmsExchanger(options["credentials"]) if known and _plans_exchanges(plan) else None

        def save_state() -> None:
            if state_file is not None:
                _write_state(state_file, {m.serial: m.state() for m in meters})

        def save_history_states(states: dict[str, Any]) -> None:
            if state_file is not None:
                _write_state(state_file, {**saved, **states})

        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
        labels = LabelWriter(options["labels"])
        fleet: Fleet | None = None
        try:
            backfill = dt.timedelta(days=options["backfill_days"])
            if speed == "realtime" and backfill and options["backfill_via"] == "pipeline":
                now = dt.datetime.now(tz=dt.UTC)
                self.stdout.write(
                    f"making the last {options['backfill_days']} days of history and storing them through the "
                    f"pipeline, in {options['history_workers']} processes"
                )
                made = history.make_history(
                    meters,
                    start=now - backfill,
                    end=now,
                    workers=options["history_workers"],
                    labels=options["labels"],
                    exchanger=exchanger,
                    save_states=save_history_states,
                    progress=not options["no_progress"],
                    should_stop=lambda: stopping,
                )
                self.stdout.write(made.describe())
                # The same meters go on (exchanged ones replaced by their successors, whose logins the
                # exchanges wrote into the credentials file).
                meters[:] = made.meters
                save_state()
                if stopping:
                    return
                credentials = read_credentials(options["credentials"], options["meters"])
                if made.totals.stored:
                    history.judge_recent(sorted(made.totals.meter_pks), end=now)
            fleet = Fleet(
                meters,
                {login.serial: login for login in credentials},
                behaviours=behaviours,
                # Exchanges need the registry (the MDMS's service): with none, the plan's exchanges are skipped.
                exchanger=exchanger,
            )
            live = fleet.connect()
            self.stdout.write(
                f"{len(live)} of {len(meters)} meters connected ({known} known to the registry), speed {speed}"
            )
            if fleet.over_tls:
                on_tls = sum(1 for link in live if fleet.uses_certificate(link.meter.serial))
                self.stdout.write(
                    f"{on_tls} of {fleet.over_tls} meters with a client certificate connected over TLS "
                    f"to {settings.MQTT_HOST}:{settings.MQTT_TLS_PORT}"
                )
            if not live:
                raise CommandError("no meter could connect; see the warnings above (mqtt_sync? credentials?)")
            if speed == "max":
                assert start is not None
                run_accelerated(
                    fleet,
                    start=start,
                    end=end,
                    labels=labels,
                    progress=not options["no_progress"],
                    should_stop=lambda: stopping,
                )
            else:
                if backfill:
                    # Catch up at full speed: each meter skips the intervals it sent before (--state, or
                    # the history just stored through the pipeline, whose last minutes it sends).
                    now = dt.datetime.now(tz=dt.UTC)
                    self.stdout.write(f"catching up the last {options['backfill_days']} days at full speed")
                    run_accelerated(
                        fleet,
                        start=now - backfill,
                        end=now,
                        labels=labels,
                        progress=not options["no_progress"],
                        should_stop=lambda: stopping,
                    )
                    save_state()
                run_realtime(fleet, labels=labels, should_stop=lambda: stopping)
        finally:
            save_state()
            labels.close()
            if fleet is not None:
                fleet.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if fleet is not None:
            self.stdout.write(describe(fleet.stats))
