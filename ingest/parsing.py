"""Payloads to canonical readings, events and replies, or a typed rejection saying why not.

Pure functions (no database, no broker): the worker and the importer call them, and the
property tests hammer them. Accepted reading formats (see DESIGN.md, "MQTT contract"):

- canonical: {"ts", "interval_s"?, "energy_import_kwh"?, ..., "power_factor"?}; ts is ISO 8601
  with Z or an offset, or epoch seconds or milliseconds; only ts and one energy or power field
  are required;
- the MongoDB smart-meter reference solution: {"meter_id", "timestamp", "voltage", "current",
  "power", "energy", "power_factor", "frequency"}, numbers possibly as strings;
- a JSON list of either (an interval block);
- for historical import, the Enedis/Linky load curve: {"usage_point_id", "reading_type",
  "interval_reading": [{"value", "date", "interval_length"}]}, optionally under "meter_reading".
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from mdms.core.reading_fields import MAX_INTERVAL_S, MAX_POWER_W, VALUE_FIELD_NAMES, VALUE_FIELDS, Kind
from mdms.core.reading_quality import ESTIMATED_DATAHUB

# A meter never reports more than this many seconds ahead of our clock; beyond it the meter's
# clock is wrong and the reading would poison watermarks and rollups.
MAX_FUTURE_S = 300
OLDEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# Enedis publishes load curves in French local time without an offset.
ENEDIS_ZONE = ZoneInfo("Europe/Paris")
# What a reply to a command may say (docs/commands.md).
REPLY_STATUSES = frozenset({"acknowledged", "completed", "failed"})
RELAY_STATES = frozenset({"connected", "disconnected", "armed"})

# Plausible bounds of each field: mdms.core.reading_fields, the one list of a reading's fields.
RANGES: dict[str, tuple[float, float]] = {
    field.name: (field.low, field.high)
    for field in VALUE_FIELDS
    if field.kind == Kind.MEASURE and field.low is not None and field.high is not None
}
MEASURED_FIELDS = VALUE_FIELD_NAMES
# At least one of these makes a reading worth storing.
REQUIRED_ANY = ("energy_import_kwh", "energy_export_kwh", "register_import_kwh", "register_export_kwh", "power_w")
# Without interval_s, energy is checked against the longest interval a meter commonly uses.
ASSUMED_INTERVAL_S = 3600
MAX_BLOCK = 10_000  # readings in one message; beyond this it is a flood, not an interval block

REFERENCE_FIELDS = {
    "voltage": "voltage_v",
    "current": "current_a",
    "power": "power_w",
    "energy": "energy_import_kwh",
    "power_factor": "power_factor",
    "frequency": "frequency_hz",
}


class Reason(StrEnum):
    """Reason codes of rejections, as counted on the operators' dashboard."""

    BAD_ENCODING = "bad_encoding"
    BAD_JSON = "bad_json"
    BAD_SHAPE = "bad_shape"
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_OLD = "too_old"
    SERIAL_MISMATCH = "serial_mismatch"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_METER = "unknown_meter"
    DISABLED_METER = "disabled_meter"
    AFTER_REMOVAL = "after_removal"  # an interval ending after the meter's removal (an exchange)
    BEFORE_INSTALLATION = "before_installation"  # an interval ending at or before an exchange put it in


class Rejection(Exception):
    """A payload (or one element of an interval block) that cannot be used."""

    def __init__(self, code: Reason, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Reading:
    ts: dt.datetime  # interval end, UTC
    values: dict[str, float]  # MEASURED_FIELDS present in the payload, in their units
    interval_s: int | None = None
    # A quality code (mdms.core.reading_quality) the source gave the value: a data hub's estimate.
    quality: str | None = None


@dataclass(frozen=True)
class Event:
    ts: dt.datetime
    type: str
    detail: Any = None


@dataclass(frozen=True)
class Reply:
    id: str
    ts: dt.datetime
    register_import_kwh: float | None
    register_export_kwh: float | None = None
    # "acknowledged", "completed" or "failed" (docs/commands.md); a read reply without one is completed.
    status: str = "completed"
    reason: str = ""  # a failed command's reason, as the meter gave it
    # Kind-specific results: relay state, clock offset, reset demand.
    relay: str | None = None
    offset_s: float | None = None
    max_demand_kw: float | None = None
    # Intervals a read's answer carried along (the meter's newest, in the readings contract):
    # stored as readings with source on_demand; each element judged on its own.
    readings: Parsed | None = None

    def extras(self) -> dict[str, Any]:
        """What the reply said beyond its registers, only where it said it (the stored document)."""
        found = {
            "reason": self.reason,
            "relay": self.relay,
            "offset_s": self.offset_s,
            "max_demand_kw": self.max_demand_kw,
        }
        return {key: value for key, value in found.items() if value not in (None, "")}


@dataclass
class Parsed:
    """What one message gave: usable readings, and rejections of its unusable elements."""

    readings: list[Reading] = field(default_factory=list)
    rejections: list[tuple[Rejection, Any]] = field(default_factory=list)  # (why, the element)


def decode_json(payload: bytes | str) -> Any:
    """The JSON value of a payload, or a Rejection saying why there is none.

    orjson reads a well-formed payload (UTF-8 bytes, as MQTT carries them) in a fraction of the
    standard library's time: decoding was the largest share of our own cost per reading message.
    What orjson refuses goes through the standard library, which says why in our terms (not UTF-8,
    empty, a NaN or Infinity literal) or reads what orjson does not (lone surrogates, integers too
    large for a double). One difference remains: orjson reads an integer beyond 64 bits as the
    nearest float. A reading's numbers all become floats anyway; where an integer must stay exact
    (a reply's id, an event's detail) the caller uses decode_json_exact.
    """
    try:
        return _orjson_loads(payload)
    except _OrjsonError:
        pass
    return _decode_json_slowly(payload)


def decode_json_exact(payload: bytes | str) -> Any:
    """decode_json for payloads whose integers must stay exact beyond 64 bits (a reply's id, an
    event's free-form detail): orjson reads such an integer as the nearest float."""
    return _decode_json_slowly(payload)


def _decode_json_slowly(payload: bytes | str) -> Any:
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejection(Reason.BAD_ENCODING, "payload is not UTF-8 text") from None
    if not payload.strip():
        raise Rejection(Reason.BAD_JSON, "payload is empty")
    try:
        # NaN and Infinity are not JSON; Python accepts them unless told otherwise.
        return _DECODER.decode(payload)
    except Rejection:
        raise
    except (ValueError, RecursionError) as exc:
        raise Rejection(Reason.BAD_JSON, f"payload is not JSON: {str(exc)[:120]}") from None


def _reject_constant(name: str) -> Any:
    raise Rejection(Reason.NOT_FINITE, f"{name} is not a number")


_isfinite = math.isfinite
_orjson_loads = orjson.loads
_OrjsonError = orjson.JSONDecodeError
# One decoder for every message (json.loads with an option builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def number(value: Any, name: str) -> float:
    """A finite float from a JSON number or a numeric string ("231.4"); never from a bool."""
    # A JSON float, by far the commonest, first (type() is exact: a bool is no float).
    if type(value) is float:
        if math.isfinite(value):
            return value
        raise Rejection(Reason.NOT_FINITE, f"{name} is {value}")
    if isinstance(value, bool) or value is None:
        raise Rejection(Reason.BAD_TYPE, f"{name} must be a number, not {type(value).__name__}")
    if isinstance(value, int | float):
        try:
            result = float(value)
        except OverflowError:  # an integer with hundreds of digits
            raise Rejection(Reason.OUT_OF_RANGE, f"{name} is too large") from None
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise Rejection(Reason.BAD_TYPE, f"{name} must be a number, not {value[:40]!r}") from None
    else:
        raise Rejection(Reason.BAD_TYPE, f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(result):
        raise Rejection(Reason.NOT_FINITE, f"{name} is {result}")
    return result


_EPOCH = re.compile(r"\s*\d+(\.\d+)?\s*")
_MAX_FUTURE = dt.timedelta(seconds=MAX_FUTURE_S)


# ISO 8601 texts read lately, and their UTC time (each one valid and not before 2000). Meters
# report the same interval ends (every meter's 00:15, 00:30, ...), so nearly every reading's
# time is found here instead of being parsed again. Cleared when full; a dict's get and set are
# atomic, so threads may share it.
_recent_times: dict[str, dt.datetime] = {}
RECENT_TIMES_MAX = 4096


def timestamp(value: Any, name: str, *, now: dt.datetime, naive_zone: dt.tzinfo | None = None) -> dt.datetime:
    """A UTC datetime from ISO 8601 (with Z or an offset) or epoch seconds/milliseconds.

    naive_zone is how to read an ISO time without offset (formats that document one); without
    it, such a time is rejected, since guessing the zone shifts every reading by hours.
    """
    if naive_zone is None and type(value) is str:
        known = _recent_times.get(value)
        if known is not None:
            if known > now + _MAX_FUTURE:
                raise Rejection(Reason.FUTURE_TIMESTAMP, f"{name} {known.isoformat()} is in the future")
            return known
        result = _timestamp(value, name, now=now, naive_zone=None)
        if len(_recent_times) >= RECENT_TIMES_MAX:
            _recent_times.clear()
        _recent_times[value] = result
        return result
    return _timestamp(value, name, now=now, naive_zone=naive_zone)


def _timestamp(value: Any, name: str, *, now: dt.datetime, naive_zone: dt.tzinfo | None) -> dt.datetime:
    if isinstance(value, bool) or value is None:
        raise Rejection(Reason.BAD_TIMESTAMP, f"{name} must be a time, not {type(value).__name__}")
    # An ISO 8601 time always has its "T" (checked first: the regular expression costs more).
    if isinstance(value, int | float) or (isinstance(value, str) and "T" not in value and _EPOCH.fullmatch(value)):
        epoch = number(value, name)
        # Epoch seconds reach 1e11 in the year 5138; anything above is milliseconds.
        if epoch > 1e11:
            epoch /= 1000.0
        try:
            result = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise Rejection(Reason.BAD_TIMESTAMP, f"{name} {value!r} is not a representable time") from None
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise Rejection(Reason.BAD_TIMESTAMP, f"{name} {value[:40]!r} is not ISO 8601") from None
        if parsed.tzinfo is None:
            if naive_zone is None:
                raise Rejection(Reason.BAD_TIMESTAMP, f"{name} {value[:40]!r} has no Z or UTC offset")
            parsed = parsed.replace(tzinfo=naive_zone)
        try:
            result = parsed.astimezone(dt.UTC)
        except OverflowError:
            raise Rejection(Reason.BAD_TIMESTAMP, f"{name} {value[:40]!r} is out of range") from None
    else:
        raise Rejection(Reason.BAD_TIMESTAMP, f"{name} must be a time, not {type(value).__name__}")
    if result > now + _MAX_FUTURE:
        raise Rejection(Reason.FUTURE_TIMESTAMP, f"{name} {result.isoformat()} is in the future")
    if result < OLDEST:
        raise Rejection(Reason.TOO_OLD, f"{name} {result.isoformat()} is before 2000")
    # MongoDB keeps milliseconds; truncating here makes a reading equal to its stored copy.
    if result.microsecond % 1000:
        return result.replace(microsecond=result.microsecond // 1000 * 1000)
    return result


def _check_range(name: str, value: float, interval_s: int | None) -> None:
    bounds = RANGES.get(name)
    if bounds is None:
        # An energy: the most an interval can hold at the largest plausible power.
        low, high = 0.0, MAX_POWER_W * (interval_s or ASSUMED_INTERVAL_S) / 3_600_000
    else:
        low, high = bounds
    if not low <= value <= high:
        raise Rejection(Reason.OUT_OF_RANGE, f"{name} = {value:g} is outside [{low:g}, {high:g}]")


def _interval(value: Any) -> int:
    seconds = number(value, "interval_s")
    if seconds != int(seconds) or not 1 <= seconds <= MAX_INTERVAL_S:
        raise Rejection(
            Reason.OUT_OF_RANGE, f"interval_s = {seconds:g} is not a whole number of seconds in [1, {MAX_INTERVAL_S}]"
        )
    return int(seconds)


def _check_serial(obj: dict[str, Any], serial: str | None) -> None:
    for key in ("serial", "meter_id"):
        if key in obj and serial is not None and str(obj[key]) != serial:
            raise Rejection(Reason.SERIAL_MISMATCH, f"{key} {str(obj[key])[:40]!r} is not the topic's meter {serial!r}")


# Each measured field with its plausible bounds, in the stored order; high None: an energy, whose
# bound depends on the interval's length.
_BOUNDS: tuple[tuple[str, float, float | None], ...] = tuple(
    (name, *RANGES[name]) if name in RANGES else (name, 0.0, None) for name in MEASURED_FIELDS
)


def reading_from_object(obj: Any, *, serial: str | None, now: dt.datetime) -> Reading:
    """One reading object, canonical or reference format."""
    if not isinstance(obj, dict):
        raise Rejection(Reason.BAD_SHAPE, f"a reading must be a JSON object, not {type(obj).__name__}")
    if "serial" in obj or "meter_id" in obj:
        _check_serial(obj, serial)
    if "ts" in obj:
        return _canonical_reading(obj, now)
    if "timestamp" in obj:
        # The reference solution writes naive UTC times (datetime.utcnow().isoformat()).
        ts = timestamp(obj["timestamp"], "timestamp", now=now, naive_zone=dt.UTC)
        source = {ours: obj[theirs] for theirs, ours in REFERENCE_FIELDS.items() if obj.get(theirs) is not None}
        source.update({k: obj[k] for k in MEASURED_FIELDS if k in obj and obj[k] is not None})
    else:
        raise Rejection(Reason.MISSING_FIELD, "a reading needs ts (or timestamp)")
    interval_s = _interval(obj["interval_s"]) if obj.get("interval_s") is not None else None
    # A finite JSON float is taken as it is; anything else goes through number().
    values = {name: raw if type(raw) is float and _isfinite(raw) else number(raw, name) for name, raw in source.items()}
    if values.keys().isdisjoint(REQUIRED_ANY):
        raise Rejection(Reason.MISSING_FIELD, f"a reading needs one of {', '.join(REQUIRED_ANY)}")
    energy_high = MAX_POWER_W * (interval_s or ASSUMED_INTERVAL_S) / 3_600_000
    for name, value in values.items():
        low, high = RANGES.get(name) or (0.0, energy_high)
        if not low <= value <= high:
            _check_range(name, value, interval_s)  # raises, with the message
    return Reading(ts=ts, values=values, interval_s=interval_s)


def _canonical_reading(obj: dict[str, Any], now: dt.datetime) -> Reading:
    """reading_from_object for the canonical format, by far the commonest: one pass over the fields,
    with the same verdicts in the same order (a bad type or value first, in field order; then a
    missing field; then the first value out of its range, in field order)."""
    ts = timestamp(obj["ts"], "ts", now=now)
    raw_interval = obj.get("interval_s")
    interval_s = _interval(raw_interval) if raw_interval is not None else None
    energy_high = MAX_POWER_W * (interval_s or ASSUMED_INTERVAL_S) / 3_600_000
    values: dict[str, float] = {}
    outside: str | None = None
    for name, low, high in _BOUNDS:
        raw = obj.get(name)
        if raw is None:
            continue
        # A finite JSON float, by far the commonest value, is taken as it is; anything else goes
        # through number(), which converts or refuses it.
        value = raw if type(raw) is float and _isfinite(raw) else number(raw, name)
        if outside is None and not low <= value <= (energy_high if high is None else high):
            outside = name
        values[name] = value
    if values.keys().isdisjoint(REQUIRED_ANY):
        raise Rejection(Reason.MISSING_FIELD, f"a reading needs one of {', '.join(REQUIRED_ANY)}")
    if outside is not None:
        _check_range(outside, values[outside], interval_s)  # raises, with the message
    return Reading(ts=ts, values=values, interval_s=interval_s)


def parse_readings(payload: bytes | str, *, serial: str | None, now: dt.datetime) -> Parsed:
    """A readings message: one object, or a list of them (each element judged on its own).

    Raises Rejection when the message as a whole is unusable (not JSON, wrong shape).
    """
    data = decode_json(payload)
    if isinstance(data, dict) and ("interval_reading" in data or "meter_reading" in data):
        return parse_enedis(data, serial=serial, now=now)
    if isinstance(data, dict):
        return Parsed(readings=[reading_from_object(data, serial=serial, now=now)])
    if not isinstance(data, list):
        raise Rejection(Reason.BAD_SHAPE, f"readings must be an object or a list, not {type(data).__name__}")
    if not data:
        raise Rejection(Reason.BAD_SHAPE, "an interval block must not be empty")
    if len(data) > MAX_BLOCK:
        raise Rejection(Reason.BAD_SHAPE, f"an interval block holds at most {MAX_BLOCK} readings, not {len(data)}")
    return _parse_elements(data, serial=serial, now=now)


def _parse_elements(elements: list[Any], *, serial: str | None, now: dt.datetime) -> Parsed:
    """Each element of a block on its own: a bad one is rejected with its reason, the rest are kept."""
    parsed = Parsed()
    for element in elements:
        try:
            parsed.readings.append(reading_from_object(element, serial=serial, now=now))
        except Rejection as rejection:
            parsed.rejections.append((rejection, element))
    return parsed


_ISO_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")


def _iso_duration_s(value: Any) -> int:
    match = _ISO_DURATION.match(str(value).strip().upper())
    if not match or not any(match.groups()):
        raise Rejection(Reason.BAD_TYPE, f"interval_length {str(value)[:20]!r} is not a duration like PT30M")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return _interval(hours * 3600 + minutes * 60 + seconds)


def enedis_usage_point(data: Any) -> str:
    """The usage point (meter) of an Enedis document."""
    body = data.get("meter_reading", data) if isinstance(data, dict) else None
    if not isinstance(body, dict) or not body.get("usage_point_id"):
        raise Rejection(Reason.MISSING_FIELD, "an Enedis load curve needs usage_point_id")
    return str(body["usage_point_id"])


# The nature of a load-curve point that the hub estimated rather than read ("E", estimé); any other
# (or none: "B", brute, the meter's own value) is the meter's. Kept as quality estimated_datahub.
ENEDIS_ESTIMATED = frozenset({"E"})


def parse_enedis(data: Any, *, serial: str | None, now: dt.datetime) -> Parsed:
    """An Enedis/Linky load curve: average power (W) or energy (Wh) per interval, dated at its end."""
    usage_point = enedis_usage_point(data)
    body = data.get("meter_reading", data)
    if serial is not None and usage_point != serial:
        raise Rejection(Reason.SERIAL_MISMATCH, f"usage_point_id {usage_point[:40]!r} is not the meter {serial!r}")
    unit = str((body.get("reading_type") or {}).get("unit", "W")) if isinstance(body.get("reading_type"), dict) else "W"
    if unit not in {"W", "Wh"}:
        raise Rejection(Reason.BAD_TYPE, f"reading_type unit {unit[:10]!r} is neither W nor Wh")
    intervals = body.get("interval_reading")
    if not isinstance(intervals, list):
        raise Rejection(Reason.BAD_SHAPE, "interval_reading must be a list")
    parsed = Parsed()
    for element in intervals:
        try:
            if not isinstance(element, dict):
                raise Rejection(Reason.BAD_SHAPE, "an interval_reading element must be an object")
            for key in ("value", "date", "interval_length"):
                if key not in element:
                    raise Rejection(Reason.MISSING_FIELD, f"interval_reading needs {key}")
            interval_s = _iso_duration_s(element["interval_length"])
            ts = timestamp(element["date"], "date", now=now, naive_zone=ENEDIS_ZONE)
            value = number(element["value"], "value")
            if unit == "W":
                values = {"power_w": value, "energy_import_kwh": value * interval_s / 3_600_000}
            else:
                values = {"energy_import_kwh": value / 1000}
            for name, amount in values.items():
                _check_range(name, amount, interval_s)
            quality = ESTIMATED_DATAHUB.code if element.get("measure_type") in ENEDIS_ESTIMATED else None
            parsed.readings.append(Reading(ts=ts, values=values, interval_s=interval_s, quality=quality))
        except Rejection as rejection:
            parsed.rejections.append((rejection, element))
    return parsed


def parse_event(payload: bytes | str, *, now: dt.datetime) -> Event:
    data = decode_json_exact(payload)
    if not isinstance(data, dict):
        raise Rejection(Reason.BAD_SHAPE, f"an event must be a JSON object, not {type(data).__name__}")
    for key in ("ts", "type"):
        if key not in data:
            raise Rejection(Reason.MISSING_FIELD, f"an event needs {key}")
    kind = data["type"]
    if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", kind):
        raise Rejection(Reason.BAD_TYPE, "event type must be a short word such as power_off")
    detail = data.get("detail")
    if detail is not None and len(json.dumps(detail)) > 4096:
        raise Rejection(Reason.OUT_OF_RANGE, "event detail is longer than 4 kB")
    return Event(ts=timestamp(data["ts"], "ts", now=now), type=kind, detail=detail)


def parse_reply(payload: bytes | str, *, now: dt.datetime) -> Reply:
    """A meter's answer to a command. The contract's first version (a read's registers, no status)
    still holds; a reply with a status may carry no register (a disconnect, a clock sync)."""
    data = decode_json_exact(payload)
    if not isinstance(data, dict):
        raise Rejection(Reason.BAD_SHAPE, f"a reply must be a JSON object, not {type(data).__name__}")
    status = data.get("status")
    if status is not None and status not in REPLY_STATUSES:
        raise Rejection(Reason.BAD_SHAPE, f"reply status must be one of {', '.join(sorted(REPLY_STATUSES))}")
    required = ("id", "ts") if status is not None else ("id", "ts", "register_import_kwh")
    for key in required:
        if key not in data:
            raise Rejection(Reason.MISSING_FIELD, f"a reply needs {key}")
    if isinstance(data["id"], bool) or not isinstance(data["id"], str | int) or not str(data["id"]).strip():
        raise Rejection(Reason.BAD_TYPE, "reply id must be a string or an integer")
    registers: dict[str, float | None] = {}
    for name in ("register_import_kwh", "register_export_kwh"):
        registers[name] = None
        if data.get(name) is not None:
            value = number(data[name], name)
            _check_range(name, value, None)
            registers[name] = value
    readings = None
    if data.get("readings") is not None:
        elements = data["readings"]
        if not isinstance(elements, list) or len(elements) > MAX_BLOCK:
            raise Rejection(Reason.BAD_SHAPE, f"a reply's readings must be a list of at most {MAX_BLOCK} readings")
        readings = _parse_elements(elements, serial=None, now=now)
    relay = data.get("relay")
    if relay is not None and relay not in RELAY_STATES:
        raise Rejection(Reason.BAD_SHAPE, f"relay must be one of {', '.join(sorted(RELAY_STATES))}")
    return Reply(
        id=str(data["id"])[:100],
        ts=timestamp(data["ts"], "ts", now=now),
        register_import_kwh=registers["register_import_kwh"],
        register_export_kwh=registers["register_export_kwh"],
        status=status or "completed",
        reason=str(data.get("reason") or "")[:300],
        relay=relay,
        offset_s=None if data.get("offset_s") is None else number(data["offset_s"], "offset_s"),
        max_demand_kw=None if data.get("max_demand_kw") is None else number(data["max_demand_kw"], "max_demand_kw"),
        readings=readings,
    )
