"""Anomalies in an operator's words: a band violation says so, a statistical flag says unusual."""

from __future__ import annotations

from monitoring.detection import describe


def test_a_voltage_beyond_en_50160_reads_as_a_supply_violation() -> None:
    swell = {"rule": "voltage_swell", "data": {"voltage_v": 254.2}, "baseline": {"low_v": 207.0, "high_v": 253.0}}
    assert describe(swell) == "254.2 V above the EN 50160 band (207-253 V): a supply voltage violation"


def test_a_120_v_service_is_judged_by_ansi_c84_1() -> None:
    sag = {"rule": "voltage_sag", "data": {"voltage_v": 110.0}, "baseline": {"low_v": 114.0, "high_v": 126.0}}
    assert "below the ANSI C84.1 range A band (114-126 V)" in describe(sag)


def test_a_statistical_voltage_flag_reads_as_unusual_within_the_band() -> None:
    flag = {
        "rule": "statistical",
        "anomalies": ["voltage_v"],
        "data": {"voltage_v": 226.0},
        "baseline": {"voltage_v": {"median": 242.0, "expected": 239.5}},
    }
    assert describe(flag) == "226.0 V, within the standard band, unusual for this meter at this hour (usual 239.5 V)"


def test_a_rule_without_a_sentence_keeps_its_name_readable() -> None:
    assert describe({"rule": "register_backwards"}) == "Register backwards"
