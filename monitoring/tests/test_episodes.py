"""The statistical rule raises one warning per episode: a meter unusual for hours is one alarm, the
intervals that continue it are kept for the record without alerting anyone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdms.core.timeseries import anomalies as store
from monitoring import services
from monitoring.detection import ALERTING, describe, episodes
from monitoring.tests import helpers

DAY = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
HISTORY_START = DAY - dt.timedelta(days=28)
# Two stretches of a sagging supply inside the EN 50160 band (207-253 V), 16 V below this meter's
# usual 230 V: three hours in the late morning, and half an hour two hours after the first ended.
FIRST = [DAY + dt.timedelta(hours=10) + helpers.STEP * (k + 1) for k in range(12)]
SECOND = [DAY + dt.timedelta(hours=15) + helpers.STEP * (k + 1) for k in range(2)]
SAGGING_V = 214.0


@pytest.fixture
def sagging_day(alice: Any, mongo: Any) -> int:
    documents = list(helpers.household(alice.meter.pk, HISTORY_START, DAY + dt.timedelta(days=1)))
    for document in documents:
        if document["ts"] in FIRST or document["ts"] in SECOND:
            document["voltage_v"] = SAGGING_V
    helpers.store(documents)
    return int(alice.meter.pk)


def _statistical(meter_pk: int) -> list[dict[str, Any]]:
    found = [a for a in store.anomalies(meter_pk=meter_pk, limit=1000) if a["rule"] == episodes.EPISODE_RULE]
    return sorted(found, key=lambda a: a["timestamp"])


def _assert_two_episodes(meter_pk: int) -> None:
    found = _statistical(meter_pk)
    assert [a["timestamp"] for a in found] == FIRST + SECOND  # every flagged interval is on record
    warnings = [a for a in found if a["severity"] in ALERTING]
    assert [a["timestamp"] for a in warnings] == [FIRST[0], SECOND[0]]  # one alarm per episode
    assert {a["severity"] for a in found if a not in warnings} == {episodes.CONTINUATION_SEVERITY}
    assert [a["episode_start"] for a in found] == [FIRST[0]] * len(FIRST) + [SECOND[0]] * len(SECOND)


def test_a_sag_lasting_three_hours_is_one_warning_and_a_later_one_another(sagging_day: int) -> None:
    services.anomalies_detect(ranges=[([sagging_day], DAY + helpers.STEP, DAY + dt.timedelta(days=1))])

    _assert_two_episodes(sagging_day)
    continuing = _statistical(sagging_day)[4]
    assert describe(continuing).endswith("; continues the warning raised 1 h 00 min earlier")
    assert "continues" not in describe(_statistical(sagging_day)[0])


def test_judged_an_interval_at_a_time_as_the_live_feed_is_the_same_episodes(sagging_day: int) -> None:
    ts = DAY + helpers.STEP
    while ts <= DAY + dt.timedelta(days=1):
        services.anomalies_detect(ranges=[([sagging_day], ts, ts)])
        ts += helpers.STEP

    _assert_two_episodes(sagging_day)


def test_judging_the_day_again_changes_no_episode(sagging_day: int) -> None:
    whole_day = [([sagging_day], DAY + helpers.STEP, DAY + dt.timedelta(days=1))]
    services.anomalies_detect(ranges=whole_day)

    again = services.anomalies_detect(ranges=whole_day)

    assert again.stored == 0
    _assert_two_episodes(sagging_day)


MINUTES = st.integers(min_value=1, max_value=3 * 24 * 60)


@given(
    steps=st.lists(
        st.tuples(MINUTES, st.sets(st.sampled_from(["voltage_v", "frequency_hz"]), min_size=1)), min_size=1, max_size=40
    )
)
def test_an_episode_never_outlasts_its_renewal_nor_spans_a_quiet_gap_nor_hides_a_new_field(
    steps: list[tuple[int, set[str]]],
) -> None:
    ts, episode = DAY, None
    for gap, fields in steps:
        ts += dt.timedelta(minutes=gap)
        following = episodes.follow(ts, fields, episode)
        assert following.start <= ts and ts - following.start < episodes.RENEW
        if episode is not None and (ts - episode.last > episodes.QUIET or not fields <= episode.fields):
            assert following.start == ts  # a quiet gap, or a field the previous finding did not flag
        if following.start != ts:
            assert episode is not None and following.start == episode.start
        episode = following


def test_a_frequency_excursion_during_a_voltage_episode_is_a_warning_of_its_own() -> None:
    voltage = episodes.follow(DAY, ["voltage_v"], None)
    still = episodes.follow(DAY + helpers.STEP, ["voltage_v"], voltage)
    both = episodes.follow(DAY + 2 * helpers.STEP, ["voltage_v", "frequency_hz"], still)

    assert still.start == DAY
    assert both.start == DAY + 2 * helpers.STEP
