"""Parsing: every accepted format gives canonical readings; anything else a typed rejection."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import parsing
from ingest.parsing import Reason, Rejection

NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def parse(payload: object, serial: str | None = "M1") -> parsing.Parsed:
    raw = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return parsing.parse_readings(raw, serial=serial, now=NOW)


def rejected(payload: object, serial: str | None = "M1") -> Reason:
    with pytest.raises(Rejection) as info:
        parse(payload, serial)
    return info.value.code


def test_canonical_reading_keeps_every_field_in_its_unit() -> None:
    reading = parse(
        {
            "ts": "2026-11-01T00:15:00Z",
            "interval_s": 900,
            "energy_import_kwh": 0.42,
            "energy_export_kwh": 0.0,
            "register_import_kwh": 12345.678,
            "power_w": 1680.0,
            "voltage_v": 231.2,
            "current_a": 7.3,
            "frequency_hz": 50.01,
            "power_factor": 0.96,
        }
    ).readings[0]
    assert reading.ts == dt.datetime(2026, 11, 1, 0, 15, tzinfo=dt.UTC)
    assert reading.interval_s == 900
    assert reading.values["energy_import_kwh"] == 0.42
    assert reading.values["voltage_v"] == 231.2


def test_offset_and_z_agree() -> None:
    a = parse({"ts": "2026-11-01T01:15:00+01:00", "power_w": 5}).readings[0].ts
    b = parse({"ts": "2026-11-01T00:15:00Z", "power_w": 5}).readings[0].ts
    assert a == b


def test_epoch_seconds_and_milliseconds_agree() -> None:
    seconds = parse({"ts": 1761956100, "power_w": 5}).readings[0].ts
    millis = parse({"ts": 1761956100000, "power_w": 5}).readings[0].ts
    assert seconds == millis == dt.datetime(2025, 11, 1, 0, 15, tzinfo=dt.UTC)


def test_reference_solution_format_with_numbers_as_strings() -> None:
    reading = parse(
        {
            "meter_id": "M1",
            "timestamp": "2026-11-01T00:15:00",
            "voltage": "229.8",
            "current": "4.1",
            "power": "940",
            "energy": "0.235",
            "power_factor": "0.97",
            "frequency": "49.98",
        }
    ).readings[0]
    assert reading.ts == dt.datetime(2026, 11, 1, 0, 15, tzinfo=dt.UTC)
    assert reading.values == {
        "voltage_v": 229.8,
        "current_a": 4.1,
        "power_w": 940.0,
        "energy_import_kwh": 0.235,
        "power_factor": 0.97,
        "frequency_hz": 49.98,
    }


def test_interval_block_judges_each_element_on_its_own() -> None:
    parsed = parse(
        [
            {"ts": "2026-11-01T00:15:00Z", "energy_import_kwh": 0.1},
            {"ts": "2026-11-01T00:30:00Z", "energy_import_kwh": "lots"},
            {"ts": "2026-11-01T00:45:00Z", "energy_import_kwh": 0.3},
        ]
    )
    assert [r.values["energy_import_kwh"] for r in parsed.readings] == [0.1, 0.3]
    assert [rejection.code for rejection, _ in parsed.rejections] == [Reason.BAD_TYPE]


def test_enedis_load_curve_gives_average_power_and_energy_at_interval_end() -> None:
    parsed = parse(
        {
            "meter_reading": {
                "usage_point_id": "M1",
                "reading_type": {"unit": "W", "measurement_kind": "power", "aggregate": "average"},
                "interval_reading": [
                    {"value": "1200", "date": "2026-07-01 00:30:00", "interval_length": "PT30M", "measure_type": "B"}
                ],
            }
        }
    )
    reading = parsed.readings[0]
    assert reading.ts == dt.datetime(2026, 6, 30, 22, 30, tzinfo=dt.UTC)  # Paris summer time, UTC+2
    assert reading.interval_s == 1800
    assert reading.values == {"power_w": 1200.0, "energy_import_kwh": pytest.approx(0.6)}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", Reason.BAD_ENCODING),
        (b"{not json", Reason.BAD_JSON),
        (b"", Reason.BAD_JSON),
        ('{"ts": "2026-11-01T00:15:00Z", "power_w": NaN}', Reason.NOT_FINITE),
        ('{"ts": "2026-11-01T00:15:00Z", "power_w": Infinity}', Reason.NOT_FINITE),
        ({"ts": "2026-11-01T00:15:00Z", "power_w": "nan"}, Reason.NOT_FINITE),
        ("42", Reason.BAD_SHAPE),
        ([], Reason.BAD_SHAPE),
        ({"power_w": 5}, Reason.MISSING_FIELD),
        ({"ts": "2026-11-01T00:15:00Z", "voltage_v": 230}, Reason.MISSING_FIELD),
        ({"ts": "2026-11-01T00:15:00Z", "power_w": True}, Reason.BAD_TYPE),
        ({"ts": "2026-11-01T00:15:00", "power_w": 5}, Reason.BAD_TIMESTAMP),
        ({"ts": "yesterday", "power_w": 5}, Reason.BAD_TIMESTAMP),
        ({"ts": "2026-11-01T12:06:00Z", "power_w": 5}, Reason.FUTURE_TIMESTAMP),
        ({"ts": "1999-12-31T23:59:59Z", "power_w": 5}, Reason.TOO_OLD),
        ({"ts": "2026-11-01T00:15:00Z", "power_w": 5, "voltage_v": 23100}, Reason.OUT_OF_RANGE),
        ({"ts": "2026-11-01T00:15:00Z", "power_w": 5, "power_factor": 1.2}, Reason.OUT_OF_RANGE),
        ({"ts": "2026-11-01T00:15:00Z", "power_w": 5, "frequency_hz": 500}, Reason.OUT_OF_RANGE),
        ({"ts": "2026-11-01T00:15:00Z", "power_w": 5, "current_a": -3}, Reason.OUT_OF_RANGE),
        ({"ts": "2026-11-01T00:15:00Z", "interval_s": 900, "energy_import_kwh": 900}, Reason.OUT_OF_RANGE),
        ({"ts": "2026-11-01T00:15:00Z", "energy_import_kwh": -0.1}, Reason.OUT_OF_RANGE),
        ({"ts": "2026-11-01T00:15:00Z", "power_w": 10**400}, Reason.OUT_OF_RANGE),
        ({"ts": "2026-11-01T00:15:00Z", "power_w": 5, "serial": "OTHER"}, Reason.SERIAL_MISMATCH),
        ({"meter_id": "OTHER", "timestamp": "2026-11-01T00:15:00Z", "power": 5}, Reason.SERIAL_MISMATCH),
    ],
)
def test_unusable_single_reading_is_rejected_with_its_reason(payload: object, reason: Reason) -> None:
    assert rejected(payload) == reason


def test_fifteen_minutes_of_energy_is_judged_against_its_interval() -> None:
    ok = {"ts": "2026-11-01T00:15:00Z", "interval_s": 900, "energy_import_kwh": 400}
    too_much = {"ts": "2026-11-01T00:15:00Z", "interval_s": 60, "energy_import_kwh": 400}
    assert parse(ok).readings
    assert rejected(too_much) == Reason.OUT_OF_RANGE


def test_event_and_reply_payloads() -> None:
    event = parsing.parse_event(b'{"ts": "2026-11-01T00:15:00Z", "type": "power_off"}', now=NOW)
    assert (event.type, event.detail) == ("power_off", None)
    reply = parsing.parse_reply(b'{"id": 7, "ts": 1761956100, "register_import_kwh": "123.5"}', now=NOW)
    assert (reply.id, reply.register_import_kwh, reply.register_export_kwh) == ("7", 123.5, None)
    with pytest.raises(Rejection) as info:
        parsing.parse_event(b'{"ts": "2026-11-01T00:15:00Z"}', now=NOW)
    assert info.value.code == Reason.MISSING_FIELD
    with pytest.raises(Rejection) as info:
        parsing.parse_reply(b'{"id": "x", "ts": "2026-11-01T00:15:00Z", "register_import_kwh": -1}', now=NOW)
    assert info.value.code == Reason.OUT_OF_RANGE


# Property tests: whatever arrives, the parser either returns valid readings or raises Rejection.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["ts", "timestamp", "energy_import_kwh", "power_w", "voltage_v", "power_factor", "interval_s", "meter_id"]
field_values = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.lists(st.integers(), max_size=2)
)
reading_like = st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=len(FIELDS))


def assert_valid(parsed: parsing.Parsed) -> None:
    for reading in parsed.readings:
        assert reading.ts.tzinfo is not None
        assert parsing.OLDEST <= reading.ts <= NOW + dt.timedelta(seconds=parsing.MAX_FUTURE_S)
        assert any(name in reading.values for name in parsing.REQUIRED_ANY)
        for name, value in reading.values.items():
            assert math.isfinite(value), name
        assert -1 <= reading.values.get("power_factor", 0) <= 1
    for rejection, _ in parsed.rejections:
        assert isinstance(rejection.code, Reason) and rejection.message


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_parse_or_are_rejected(payload: bytes) -> None:
    try:
        assert_valid(parse(payload))
    except Rejection as rejection:
        assert rejection.message


@settings(max_examples=300)
@given(json_values)
def test_any_json_parses_or_is_rejected(value: object) -> None:
    try:
        assert_valid(parse(json.dumps(value)))
    except Rejection as rejection:
        assert rejection.message


@settings(max_examples=500)
@given(st.one_of(reading_like, st.lists(reading_like, min_size=1, max_size=5)))
def test_reading_shaped_garbage_parses_or_is_rejected(value: object) -> None:
    try:
        assert_valid(parse(json.dumps(value)))
    except Rejection as rejection:
        assert rejection.message


@given(
    ts=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2026, 11, 1), timezones=st.just(dt.UTC)),
    energy=st.floats(min_value=0, max_value=100, allow_nan=False),
    voltage=st.floats(min_value=0, max_value=1000, allow_nan=False),
)
def test_valid_canonical_reading_round_trips(ts: dt.datetime, energy: float, voltage: float) -> None:
    payload = {"ts": ts.isoformat(), "interval_s": 900, "energy_import_kwh": energy, "voltage_v": voltage}
    reading = parse(payload).readings[0]
    assert reading.ts == ts.replace(microsecond=ts.microsecond // 1000 * 1000)
    assert reading.values == {"energy_import_kwh": energy, "voltage_v": voltage}


@pytest.mark.parametrize(("power_factor", "accepted"), [(-1.0, True), (-0.6, True), (0.97, True), (1.0, True),
                                                        (-1.01, False), (1.2, False)])  # fmt: skip
def test_a_power_factor_from_minus_one_to_one_is_accepted_and_beyond_it_refused(
    power_factor: float, accepted: bool
) -> None:
    # Negative when power flows out (a solar home exporting): a real value, not a fault.
    payload = {"ts": "2026-11-01T00:15:00Z", "power_w": -1200, "power_factor": power_factor}
    if accepted:
        assert parse(payload).readings[0].values["power_factor"] == power_factor
    else:
        assert rejected(payload) == Reason.OUT_OF_RANGE


def test_a_load_curve_point_the_hub_estimated_keeps_that_quality() -> None:
    points = [
        {"value": "1200", "date": "2026-07-01 00:30:00", "interval_length": "PT30M", "measure_type": "B"},
        {"value": "800", "date": "2026-07-01 01:00:00", "interval_length": "PT30M", "measure_type": "E"},
        {"value": "900", "date": "2026-07-01 01:30:00", "interval_length": "PT30M"},
    ]
    parsed = parse({"meter_reading": {"usage_point_id": "M1", "interval_reading": points}})
    assert [r.quality for r in parsed.readings] == [None, "estimated_datahub", None]
