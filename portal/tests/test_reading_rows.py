"""The readings API's fast row writer says exactly what DRF's declared fields say."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from portal.api.serializers import ReadingRowSerializer

moments = st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=st.just(dt.UTC)
)
energies = st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(
    start=moments,
    import_kwh=energies,
    export_kwh=energies,
    estimated_import_kwh=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    estimated=st.booleans(),
    edited=st.one_of(st.none(), st.booleans()),
    missing=st.one_of(st.none(), st.integers(min_value=0, max_value=100)),
    zone=st.sampled_from(["Europe/Paris", "UTC", "America/New_York"]),
)
def test_the_fast_row_writer_matches_the_declared_fields(
    start: dt.datetime, import_kwh: float | None, export_kwh: float | None, estimated_import_kwh: float,
    estimated: bool, edited: bool | None, missing: int | None, zone: str,
) -> None:  # fmt: skip
    from django.test import override_settings

    row: dict[str, Any] = {
        "start": start,
        "end": start + dt.timedelta(minutes=15),
        "import_kwh": import_kwh,
        "export_kwh": export_kwh,
        "estimated_import_kwh": estimated_import_kwh,
        "estimated": estimated,
        "edited": edited,
        "missing_intervals": missing,
    }
    with override_settings(TIME_ZONE=zone):
        generic = serializers.Serializer.to_representation(ReadingRowSerializer(), row)
        assert ReadingRowSerializer(row).data == dict(generic)


@pytest.mark.parametrize("zone", ["Europe/Paris"])
def test_a_row_in_the_repeated_autumn_hour_keeps_its_offset(zone: str, settings: Any) -> None:
    settings.TIME_ZONE = zone
    start = dt.datetime(2026, 10, 25, 1, 0, tzinfo=dt.UTC)  # 02:00 CET, the second 02:00 of the night
    row = {"start": start, "end": start + dt.timedelta(minutes=15), "import_kwh": 0.1, "export_kwh": None,
           "estimated_import_kwh": 0.0, "estimated": False, "edited": False, "missing_intervals": None}  # fmt: skip
    assert ReadingRowSerializer(row).data["start"] == "2026-10-25T02:00:00+01:00"
