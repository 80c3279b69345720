"""One simulated meter: samples become canonical readings with registers, faults are applied,
and what the meter would send comes out as timed emissions. Still no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ingest.simulator.faults import Fault, FaultKind, FaultPlan, iso
from ingest.simulator.load import LoadModel, Sample
from ingest.simulator.profiles import MeterProfile
from mdms.core.mqtt.topics import Kind
from mdms.core.reading_fields import DEFAULT_INTERVAL_S

# A resumed meter makes this much before its saved moment again, unsent (SimulatedMeter._warm_up): a
# fault lasts a day at most, and one planned the day before may overlap it.
RESUME_WARM_UP = dt.timedelta(days=2)


@dataclass(frozen=True)
class Emission:
    """A message the meter sends at `at` (its simulated time): a reading or an event."""

    at: dt.datetime
    kind: Kind  # READINGS or EVENTS
    payload: dict[str, Any]


def interval_ends(start: dt.datetime, end: dt.datetime, interval_s: int) -> Iterator[dt.datetime]:
    """Interval ends in (start, end], aligned to multiples of interval_s since the epoch."""
    first = (int(start.timestamp()) // interval_s + 1) * interval_s
    moment = dt.datetime.fromtimestamp(first, tz=dt.UTC)
    step = dt.timedelta(seconds=interval_s)
    while moment <= end:
        yield moment
        moment += step


@dataclass
class _Held:
    release_after: int  # intervals still to go
    emission: Emission


@dataclass
class SimulatedMeter:
    profile: MeterProfile
    seed: int
    interval_s: int = DEFAULT_INTERVAL_S
    fault_plan: FaultPlan = field(default_factory=FaultPlan)
    time_zone: str = "Europe/Paris"
    # Registers in whole Wh, so that a register is exactly the running sum of interval energies.
    register_import_wh: int = field(init=False)
    register_export_wh: int = field(init=False)
    last_ts: dt.datetime | None = field(default=None, init=False)  # of the newest reading made
    # The end of the last interval made (after an outage, later than last_ts): a resumed meter goes on after it.
    made_until: dt.datetime | None = field(default=None, init=False)
    _model: LoadModel = field(init=False)
    _faults: list[Fault] = field(default_factory=list, init=False)
    _planned_days: set[dt.date] = field(default_factory=set, init=False)
    _started: set[Fault] = field(default_factory=set, init=False)
    _stuck: dict[Fault, tuple[float, float]] = field(default_factory=dict, init=False)
    _held: list[_Held] = field(default_factory=list, init=False)
    _powered: bool = field(default=True, init=False)
    # The supply relay, opened by a disconnect command: the premise then draws (and exports) nothing,
    # while the meter itself stays powered and keeps reporting.
    relay_connected: bool = field(default=True, init=False)
    # The register's capacity (6 digits and 1 decimal, as the MDMS assumes by default): what it shows
    # wraps to 0 there, while register_*_wh keep counting.
    register_capacity_kwh: float = 100_000.0
    # Stop at a planned meter exchange (exchange_due) so the fleet can do it through the MDMS; without
    # this, METER_EXCHANGE faults are ignored (a meter on its own cannot be exchanged).
    exchanges: bool = False
    exchange_due: Fault | None = field(default=None, init=False)
    # A meter put in by an exchange: exchanges planned up to this moment are not its own.
    installed_at: dt.datetime | None = field(default=None, init=False)
    _wrapped: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._model = LoadModel(self.profile, self.seed, self.time_zone)
        self.register_import_wh = round(self.profile.initial_register_import_kwh * 1000)
        self.register_export_wh = round(self.profile.initial_register_export_kwh * 1000)
        margin = self.fault_plan.rollover_margin_kwh(self.serial, seed=self.seed)
        if margin is not None:
            # Installed with its register near the top: it wraps once `margin` kWh have been drawn.
            self.register_import_wh = self._capacity_wh - round(margin * 1000)

    @property
    def _capacity_wh(self) -> int:
        return round(self.register_capacity_kwh * 1000)

    def shown_registers(self) -> tuple[float, float]:
        """What the register display shows now (kWh, wrapped at the capacity)."""
        return (self.register_import_wh % self._capacity_wh) / 1000, (
            self.register_export_wh % self._capacity_wh
        ) / 1000

    def successor(self, serial: str, *, at: dt.datetime) -> SimulatedMeter:
        """The meter that replaces this one at `at` (an exchange): same household and plan, registers from 0."""
        profile = replace(self.profile, serial=serial, initial_register_import_kwh=0.0, initial_register_export_kwh=0.0)
        new = SimulatedMeter(
            profile, self.seed, self.interval_s, self.fault_plan, self.time_zone,
            register_capacity_kwh=self.register_capacity_kwh, exchanges=self.exchanges,
        )  # fmt: skip
        new.register_import_wh = new.register_export_wh = 0  # a new meter's register starts at 0, whatever the plan
        new.last_ts = new.made_until = new.installed_at = at
        new.relay_connected = self.relay_connected
        return new

    def state(self) -> dict[str, Any]:
        """What a restart needs to carry on where this meter stopped: its registers and last interval."""
        return {
            "last_ts": self.last_ts.isoformat() if self.last_ts else None,
            "made_until": self.made_until.isoformat() if self.made_until else None,
            "register_import_wh": self.register_import_wh,
            "register_export_wh": self.register_export_wh,
            "relay_connected": self.relay_connected,
        }

    def resume(self, state: dict[str, Any]) -> None:
        """Carry on from a saved state: registers go on from where they were, nothing is sent twice,
        and what comes next is what the meter would have made had it never stopped (RESUME_WARM_UP)."""
        self.relay_connected = bool(state.get("relay_connected", True))
        import_wh = int(state.get("register_import_wh", self.register_import_wh))
        export_wh = int(state.get("register_export_wh", self.register_export_wh))
        through = state.get("made_until") or state.get("last_ts")
        if through:
            self._warm_up(dt.datetime.fromisoformat(through), import_wh, export_wh)
        if state.get("last_ts"):
            self.last_ts = dt.datetime.fromisoformat(state["last_ts"])
        self.register_import_wh, self.register_export_wh = import_wh, export_wh

    def _warm_up(self, through: dt.datetime, import_wh: int, export_wh: int) -> None:
        """Make the RESUME_WARM_UP before `through` again, unsent, so that what was under way then goes
        on: faults (a drifting clock, an outage, a stuck register), readings held back, appliances
        running, and the faults' planning, which skips a fault overlapping an earlier one. Made twice:
        the first time gives the energy the warm-up draws, the second starts the registers that much
        below the saved ones, so that what it holds (a held reading, a stuck register) shows them."""
        since = through - RESUME_WARM_UP
        probe = self._twin(0, 0)
        probe.advance(since, through)
        twin = self._twin(import_wh - probe.register_import_wh, export_wh - probe.register_export_wh)
        twin.advance(since, through)
        for name in ("_model", "_faults", "_planned_days", "_started", "_stuck", "_held", "_powered", "last_ts"):
            setattr(self, name, getattr(twin, name))
        self.made_until = through
        # An exchange before `through` was done then, or refused: it is not offered again.
        self._started.update(
            fault for fault in self._faults if fault.kind is FaultKind.METER_EXCHANGE and fault.start < through
        )

    def _twin(self, import_wh: int, export_wh: int) -> SimulatedMeter:
        twin = SimulatedMeter(
            self.profile, self.seed, self.interval_s, self.fault_plan, self.time_zone,
            register_capacity_kwh=self.register_capacity_kwh,
        )  # fmt: skip
        twin.register_import_wh, twin.register_export_wh = import_wh, export_wh
        twin.relay_connected = self.relay_connected
        return twin

    @property
    def serial(self) -> str:
        return self.profile.serial

    def advance(self, start: dt.datetime, end: dt.datetime) -> tuple[list[Emission], list[Fault]]:
        """Everything the meter sends for the intervals ending in (start, end], in sending order,
        and the faults that began in them (for the label file)."""
        emissions: list[Emission] = []
        began: list[Fault] = []
        made = self.made_until or self.last_ts
        for interval_end in interval_ends(start, end, self.interval_s):
            if made is not None and interval_end <= made:
                continue  # already sent before a restart (resumed from saved state)
            self._plan(interval_end)
            exchange = self._exchange_before(interval_end)
            if exchange is not None:
                # Exchanged at the start of this interval: the new meter sends it (Fleet.advance).
                self.exchange_due = exchange
                break
            emissions.extend(self._interval(interval_end, began))
            self.made_until = interval_end
        return emissions, began

    def _exchange_before(self, interval_end: dt.datetime) -> Fault | None:
        if not self.exchanges:
            return None
        for fault in self._faults:
            if self.installed_at is not None and fault.start <= self.installed_at:
                continue
            if fault.kind is FaultKind.METER_EXCHANGE and fault.start < interval_end and fault not in self._started:
                self._started.add(fault)
                # An exchange planned inside an interval happens at its start (a field visit's record).
                return replace_fault_start(fault, interval_end - dt.timedelta(seconds=self.interval_s))
        return None

    def flush(self) -> list[Emission]:
        """Readings still held back (out of order) when the run ends."""
        held, self._held = self._held, []
        return [item.emission for item in held]

    def read_registers(self, now: dt.datetime) -> dict[str, Any]:
        """An on-demand read: the registers as of the last completed interval."""
        shown_import, shown_export = self.shown_registers()
        return {"ts": iso(now), "register_import_kwh": shown_import, "register_export_kwh": shown_export}

    def _plan(self, interval_end: dt.datetime) -> None:
        # The days of the interval's start and end (two only for the interval ending at midnight).
        for day in ((interval_end - dt.timedelta(seconds=self.interval_s)).date(), interval_end.date()):
            if day not in self._planned_days:
                self._planned_days.add(day)
                # Faults long over are no longer needed (none of them can cover or overlap what comes).
                horizon = interval_end - dt.timedelta(days=2)
                self._faults = [fault for fault in self._faults if fault.end > horizon]
                for fault in self.fault_plan.for_day(self.serial, day, seed=self.seed, interval_s=self.interval_s):
                    if not any(fault.overlaps(other) for other in self._faults):
                        self._faults.append(fault)

    def _interval(self, end: dt.datetime, began: list[Fault]) -> list[Emission]:
        sample = self._model.sample(end, self.interval_s)
        interval_start = end - dt.timedelta(seconds=self.interval_s)
        active = [fault for fault in self._faults if fault.covers(end)]
        emissions: list[Emission] = []
        for fault in active:
            if fault not in self._started and fault.kind is not FaultKind.METER_EXCHANGE:
                self._started.add(fault)
                began.append(fault)
        # An outage that ends inside this interval still lets the meter report its rest.
        on_fraction = 1.0
        for fault in self._faults:
            if fault.kind is FaultKind.OUTAGE and interval_start < fault.end < end:
                if fault not in self._started:
                    self._started.add(fault)
                    began.append(fault)
                if self._powered:
                    # Short enough to start and end inside one interval.
                    emissions.append(self._power_off(fault))
                off_s = (fault.end - max(fault.start, interval_start)).total_seconds()
                on_fraction = max(0.0, 1.0 - off_s / self.interval_s)
                self._powered = True
                emissions.append(Emission(fault.end, Kind.EVENTS, {"ts": iso(fault.end), "type": "power_on"}))
        outage = next((fault for fault in active if fault.kind is FaultKind.OUTAGE), None)
        if outage is not None:
            if self._powered:
                emissions.append(self._power_off(outage))
            if outage.end == end:
                self._powered = True
                emissions.append(Emission(end, Kind.EVENTS, {"ts": iso(end), "type": "power_on"}))
            return emissions

        reading = self._reading(sample, active, on_fraction)
        if self._wrapped:
            self._wrapped = False
            began.append(
                Fault(self.serial, FaultKind.REGISTER_ROLLOVER, interval_start, end,
                      {"capacity_kwh": self.register_capacity_kwh, "register_kwh": reading["register_import_kwh"]})
            )  # fmt: skip
        for fault in active:
            self._distort(fault, reading)
        emission = Emission(end, Kind.READINGS, reading)
        released = self._release()
        if any(fault.kind is FaultKind.OUT_OF_ORDER for fault in active):
            delay = next(f for f in active if f.kind is FaultKind.OUT_OF_ORDER).details.get("delay_intervals", 3)
            self._held.append(_Held(int(delay), emission))
        else:
            emissions.append(emission)
            if any(fault.kind is FaultKind.DUPLICATE for fault in active):
                emissions.append(Emission(end, Kind.READINGS, dict(reading)))
        # Re-sent late, after the newer reading, and marked with the time they finally went out.
        emissions.extend(Emission(end, held.kind, held.payload) for held in released)
        return emissions

    def _power_off(self, outage: Fault) -> Emission:
        self._powered = False
        # The last gasp: sent as the supply fails, then silence until power returns.
        return Emission(
            outage.start, Kind.EVENTS, {"ts": iso(outage.start), "type": "power_off", "detail": "last gasp"}
        )

    def _release(self) -> list[Emission]:
        due: list[Emission] = []
        for item in self._held:
            item.release_after -= 1
            if item.release_after <= 0:
                due.append(item.emission)
        self._held = [item for item in self._held if item.release_after > 0]
        return due

    def _reading(self, sample: Sample, active: list[Fault], on_fraction: float) -> dict[str, Any]:
        consumption_w, production_w = sample.consumption_w, sample.production_w
        voltage_v, frequency_hz, power_factor = sample.voltage_v, sample.frequency_hz, sample.power_factor
        for fault in active:
            if fault.kind in (FaultKind.VOLTAGE_SAG, FaultKind.VOLTAGE_SWELL):
                voltage_v = self.profile.nominal_voltage_v * float(fault.details.get("voltage_factor", 1.0))
            elif fault.kind is FaultKind.FREQUENCY_EXCURSION:
                frequency_hz = self.profile.nominal_frequency_hz + float(fault.details.get("frequency_offset_hz", 0.5))
            elif fault.kind is FaultKind.OVER_CURRENT:
                current_a = self.profile.rated_current_a * float(fault.details.get("current_factor", 1.2))
                consumption_w = current_a * voltage_v * power_factor + production_w
        if not self.relay_connected:
            consumption_w = production_w = 0.0
        net_w = (consumption_w - production_w) * on_fraction
        energy_wh = round(net_w * self.interval_s / 3600.0)
        import_wh, export_wh = max(0, energy_wh), max(0, -energy_wh)
        capacity = self._capacity_wh
        self._wrapped = (self.register_import_wh % capacity) + import_wh >= capacity
        self.register_import_wh += import_wh
        self.register_export_wh += export_wh
        # What the display shows (shown_registers), with the capacity worked out once.
        shown_import = (self.register_import_wh % capacity) / 1000
        shown_export = (self.register_export_wh % capacity) / 1000
        self.last_ts = sample.end
        # Average power over the interval, consistent with its energy; negative while exporting.
        power_w = round((import_wh - export_wh) * 3600.0 / self.interval_s, 1)
        voltage_v = round(voltage_v, 1)
        power_factor = round(power_factor, 3)
        return {
            "ts": iso(sample.end),
            "interval_s": self.interval_s,
            "energy_import_kwh": import_wh / 1000,
            "energy_export_kwh": export_wh / 1000,
            "register_import_kwh": shown_import,
            "register_export_kwh": shown_export,
            "power_w": power_w,
            "voltage_v": voltage_v,
            "current_a": round(abs(power_w) / (voltage_v * power_factor), 2),
            "frequency_hz": round(frequency_hz, 3),
            "power_factor": power_factor,
        }

    def _distort(self, fault: Fault, reading: dict[str, Any]) -> None:
        """Faults of the meter itself: what it sends is wrong, what was consumed is not."""
        if fault.kind is FaultKind.STUCK_REGISTER:
            if fault not in self._stuck:
                self._stuck[fault] = (
                    round(reading["register_import_kwh"] - reading["energy_import_kwh"], 3),
                    round(reading["register_export_kwh"] - reading["energy_export_kwh"], 3),
                )
            reading["register_import_kwh"], reading["register_export_kwh"] = self._stuck[fault]
        elif fault.kind is FaultKind.REGISTER_BACKWARDS:
            drop = float(fault.details.get("drop_kwh", 10.0))
            reading["register_import_kwh"] = round(reading["register_import_kwh"] - drop, 3)
        elif fault.kind is FaultKind.CLOCK_DRIFT:
            # The clock runs fast or slow from the fault's start until it is set again at its end.
            true_end = dt.datetime.fromisoformat(reading["ts"].replace("Z", "+00:00"))
            hours = (true_end - fault.start).total_seconds() / 3600.0
            offset_s = round(float(fault.details.get("drift_s_per_hour", 60.0)) * hours)
            reading["ts"] = iso(true_end + dt.timedelta(seconds=offset_s))


def replace_fault_start(fault: Fault, start: dt.datetime) -> Fault:
    return Fault(fault.serial, fault.kind, start, max(fault.end, start), dict(fault.details))
