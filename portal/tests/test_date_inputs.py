"""Dates are typed as the utility writes them (ISO, labelled), never in the browser's locale."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client

from portal.listing import iso_date_field


@pytest.mark.django_db
def test_the_download_form_asks_for_iso_dates_with_a_label_that_says_so(alice: Any, mongo: Any) -> None:
    client = Client()
    client.force_login(alice.user)
    page = client.get(f"/meters/{alice.meter.pk}/").content.decode()
    assert 'type="date"' not in page
    assert 'placeholder="YYYY-MM-DD"' in page
    assert "From (YYYY-MM-DD)" in page


def test_an_iso_date_field_takes_iso_and_refuses_a_locale_date() -> None:
    field = iso_date_field("From")
    assert field.clean("2026-02-11") == dt.date(2026, 2, 11)
    with pytest.raises(Exception, match="valid date"):
        field.clean("11/02/2026")  # which day is it: 11 February or 2 November?
