"""Reading quality from meter to bill: for a month holding every quality kind and every source, the
CSV export, the Green Button file, the REST API and the bill agree on the total and on the estimated
share, and each says per interval what it is (issue 16, section 4).

The month (November 2026, Europe/Paris, no DST change; 2,880 intervals of 15 minutes) is built by hand,
and the expected figures below are worked out from it by hand, not read from the program:

- base: every interval 0.25 kWh over MQTT (30 x 96 x 0.25 = 720 kWh);
- 3 Nov: the whole day from a file import, 0.2 kWh each (96 x 0.2 = 19.2 instead of 24: -4.8);
- 4 Nov 10:00-11:00: 4 intervals sent with an on-demand read's answer, 0.3 each (+0.2);
- 5 Nov 00:00-06:00: 24 intervals from the data hub, marked estimated by the hub, 0.15 each (3.6, -2.4);
- 6 Nov: a gap of 3 intervals interpolated, 0.2 each (0.6, -0.15);
- 7 Nov: a gap of 8 intervals from the meter's profile fitted to the registers, 0.35 each (2.8, +0.8);
- 8 Nov: a gap of 4 intervals from a reference day, 0.3 each (1.2, +0.2);
- 9 Nov 12:00-12:15: edited by billing staff to 0.5 (+0.25);
- 10 Nov 08:00-08:15 and 11 Nov 09:00-09:15: a second copy with another value (a conflicting duplicate);
  the first received (0.25) stands. VEE leaves 10 Nov's open (questionable), billing staff close
  11 Nov's (validated).

Total 720 - 4.8 + 0.2 - 2.4 - 0.15 + 0.8 + 0.2 + 0.25 = 714.1 kWh; estimated 3.6 + 0.6 + 2.8 + 1.2 = 8.2 kWh,
a share of 8.2 / 714.1 = 0.011483 (no export). Intervals: 24 + 3 + 8 + 4 estimated, 1 edited,
1 questionable, 1 validated, 2,880 - 42 = 2,838 valid.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from lxml import etree

from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill, VeeException
from billing.rollups import rollups_rebuild
from billing.tests.bills_helpers import local, readings
from billing.vee import services as vee_services
from mdms.core import reading_quality as rq
from mdms.core.models_api import ApiToken
from mdms.core.testing import Person, make_consumer
from mdms.core.timeseries import readings as stored
from mdms.core.timeseries import rollups as rollup_store
from portal.api.testing import session_client, token_client
from portal.tests.test_greenbutton import SCHEMAS

NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
STEP = dt.timedelta(minutes=15)
ESPI = "{http://naesb.org/espi}"

TOTAL_KWH = 714.1
ESTIMATED_KWH = 8.2
COUNTS = {
    "valid": 2838,
    "estimated_datahub": 24,
    "estimated_interpolation": 3,
    "estimated_profile": 8,
    "estimated_reference_day": 4,
    "edited": 1,
    "questionable": 1,
    "validated": 1,
}


def ends(day: int, hour: int, minute: int, count: int) -> list[dt.datetime]:
    """`count` interval ends (UTC), the first ending 15 minutes after the local day/hour/minute given."""
    first = local(dt.date(2026, 11, day), hour, minute).astimezone(dt.UTC) + STEP
    return [first + STEP * k for k in range(count)]


def the_month(quinn: Person, bill: User) -> None:
    """Store the month described in the module's docstring through the real stores and services."""
    pk = quinn.meter.pk
    file_day = set(ends(3, 0, 0, 96))
    on_demand = set(ends(4, 10, 0, 4))
    hub = set(ends(5, 0, 0, 24))
    gaps = {"linear": ends(6, 14, 0, 3), "profile+register": ends(7, 2, 0, 8), "reference_day": ends(8, 18, 0, 4)}
    gap_values = {"linear": 0.2, "profile+register": 0.35, "reference_day": 0.3}
    missing = {ts for times in gaps.values() for ts in times}
    special = file_day | on_demand | hub | missing
    base = readings(pk, NOV, DEC, lambda ts: None if ts in special else 0.25)
    received = dt.datetime.now(tz=dt.UTC)

    def document(ts: dt.datetime, kwh: float, origin: str, quality: str | None = None) -> dict[str, Any]:
        values = {"energy_import_kwh": kwh, "energy_export_kwh": 0.0}
        return stored.reading_document(
            meter_pk=pk, ts=ts, received_at=received, values=values, interval_s=900, origin=origin, quality=quality
        )

    stored.insert_readings(
        base
        + [document(ts, 0.2, rq.SOURCE_FILE) for ts in file_day]
        + [document(ts, 0.3, rq.SOURCE_ON_DEMAND) for ts in on_demand]
        + [document(ts, 0.15, rq.SOURCE_DATAHUB, rq.ESTIMATED_DATAHUB.code) for ts in hub]
    )
    rollup_store.upsert_estimates(
        [
            {"meter": pk, "ts": ts, "energy_import_kwh": gap_values[method], "energy_export_kwh": 0.0,
             "interval_s": 900, "method": method}
            for method, times in gaps.items()
            for ts in times
        ]
    )  # fmt: skip
    rollups_rebuild(first_day=NOV, end_day=DEC, meter_pks=[pk])
    # Conflicting duplicates, received after the first copies: the first stands, VEE flags them.
    later = received + dt.timedelta(minutes=5)
    for day, hour in ((10, 8), (11, 9)):
        (ts,) = ends(day, hour, 0, 1)
        copy = stored.reading_document(
            meter_pk=pk,
            ts=ts,
            received_at=later,
            values={"energy_import_kwh": 0.4, "energy_export_kwh": 0.0},
            interval_s=900,
        )
        stored.insert_readings([copy])
    vee_services.vee_run(meter_pks=[pk], first_day=dt.date(2026, 11, 10), end_day=dt.date(2026, 11, 12))
    worked = VeeException.objects.get(
        meter=quinn.meter, kind=VeeException.Kind.CONFLICTING_DUPLICATE, period_start=local(dt.date(2026, 11, 11))
    )
    assert vee_services.vee_exception_resolve(exception=worked, user=bill, resolution="first copy checked on site")
    (edited,) = ends(9, 12, 0, 1)
    vee_services.interval_edit(meter=quinn.meter, ts=edited, import_kwh=0.5, reason="meter swap paperwork", user=bill)


def api_pages(client: Any, url: str, params: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    response = client.get(url, {**params, "page_size": "1000"})
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        rows.extend(body["results"])
        if not body.get("next"):
            return rows
        response = client.get(body["next"])


def estimated_share(total: float, estimated: float) -> float:
    return estimated / total


@pytest.mark.django_db
def test_csv_green_button_api_and_bill_agree_on_total_and_estimated_share(
    client: Client, mongo: Any, bill: User
) -> None:
    quinn = make_consumer("quinn")
    the_month(quinn, bill)
    run = bill_run_execute(run=bill_run_create(run_date=DEC))
    issued = Bill.objects.get(run=run, account=quinn.account)

    # The bill.
    assert issued.import_kwh == Decimal("714.100")
    assert issued.estimated_kwh == Decimal("8.200")
    assert issued.estimated_share == Decimal("0.0115")  # 0.011483 to 4 places
    assert issued.determinants["intervals_by_quality"] == COUNTS
    assert issued.determinants["quality_share"]["estimated_datahub"] == "0.0083"  # 24 / 2880

    # The CSV export: a code, its ESPI number and a source on every interval.
    client.force_login(quinn.user)
    response = client.get(
        f"/meters/{quinn.meter.pk}/download/", {"start": "2026-11-01", "end": "2026-11-30", "format": "csv"}
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[attr-defined]
    csv_total = sum(float(row["import_kwh"]) for row in rows)
    csv_estimated = sum(float(row["import_kwh"]) for row in rows if row["quality"] in rq.ESTIMATED_CODES)
    assert Counter(row["quality"] for row in rows) == COUNTS
    assert csv_total == pytest.approx(TOTAL_KWH) and csv_estimated == pytest.approx(ESTIMATED_KWH)
    assert {row["espi_quality"] for row in rows if row["quality"] == "estimated_datahub"} == {"8"}
    # 2,880 less the 96 + 4 + 24 of other doors and the 15 estimated is 2,741 over MQTT, less the one
    # billing staff edited (its value is theirs now).
    sources = {"mqtt": 2740, "file": 96, "on_demand": 4, "datahub": 24, "estimation": 15, "manual": 1}
    assert Counter(row["source"] for row in rows) == sources

    # The Green Button file: valid against the schemas, ReadingQuality with ESPI's numbers.
    response = client.get(
        f"/meters/{quinn.meter.pk}/download/", {"start": "2026-11-01", "end": "2026-11-30", "format": "espi"}
    )
    feed = etree.fromstring(response.content)
    etree.XMLSchema(etree.parse(str(SCHEMAS / "usage.xsd"))).assertValid(feed)
    espi_rows = []
    for reading in feed.iter(f"{ESPI}IntervalReading"):
        quality = reading.find(f"{ESPI}ReadingQuality/{ESPI}quality")
        espi_rows.append((int(reading.findtext(f"{ESPI}value")), 0 if quality is None else int(quality.text)))
    espi_total = sum(wh for wh, _ in espi_rows) / 1000
    espi_estimated = sum(wh for wh, quality in espi_rows if quality in (8, 9)) / 1000
    assert espi_total == pytest.approx(TOTAL_KWH) and espi_estimated == pytest.approx(ESTIMATED_KWH)
    assert Counter(quality for _, quality in espi_rows) == {0: 2838, 8: 36, 9: 3, 7: 1, 10: 1, 17: 1}

    # The REST API: per interval, and filtered by quality.
    cis = token_client(ApiToken.Scope.CIS_READ)
    url = f"/api/v1/meters/{quinn.meter.pk}/readings/"
    span = {"resolution": "raw", "start": "2026-11-01T00:00:00+01:00", "end": "2026-12-01T00:00:00+01:00"}
    api_rows = api_pages(cis, url, span)
    api_total = sum(row["import_kwh"] for row in api_rows)
    api_estimated = sum(row["import_kwh"] for row in api_pages(cis, url, {**span, "quality": "estimated"}))
    assert api_total == pytest.approx(TOTAL_KWH) and api_estimated == pytest.approx(ESTIMATED_KWH)
    assert Counter(row["quality"] for row in api_rows) == COUNTS
    questionable = api_pages(cis, url, {**span, "quality": "questionable,validated"})
    assert [(row["quality"], row["espi_quality"]) for row in questionable] == [("questionable", 10), ("validated", 17)]

    # All four agree on the total and on the estimated share.
    share = float(issued.estimated_share)
    for total, estimated in ((csv_total, csv_estimated), (espi_total, espi_estimated), (api_total, api_estimated)):
        assert total == pytest.approx(float(issued.import_kwh))
        assert estimated_share(total, estimated) == pytest.approx(share, abs=0.00005)

    # Billing staff: which intervals made the billed kWh, and how each was obtained.
    staff = token_client(ApiToken.Scope.BILLING, name="billing")
    behind = api_pages(staff, f"/api/v1/bills/{issued.pk}/intervals/", {})
    assert sum(row["billed_import_kwh"] for row in behind) == pytest.approx(float(issued.import_kwh))
    (edit,) = [row for row in behind if row["quality"] == "edited"]
    assert (edit["edited_by"], edit["edit_reason"], edit["source"]) == ("bill", "meter swap paperwork", "manual")
    (doubted,) = [row for row in behind if row["quality"] == "questionable"]
    assert doubted["vee_rule"] == "conflicting_duplicate" and doubted["exception"] is not None
    estimates = api_pages(staff, f"/api/v1/bills/{issued.pk}/intervals/", {"quality": "estimated"})
    assert sum(row["billed_import_kwh"] for row in estimates) == pytest.approx(float(issued.estimated_kwh))
    assert {row["estimate_method"] for row in estimates} == {"linear", "profile+register", "reference_day", None}


@pytest.mark.django_db
def test_a_bad_quality_filter_is_a_400_that_names_the_allowed_codes(mongo: Any) -> None:
    quinn = make_consumer("quinn")
    cis = token_client(ApiToken.Scope.CIS_READ)
    span = {"resolution": "raw", "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}

    bad = cis.get(f"/api/v1/meters/{quinn.meter.pk}/readings/", {**span, "quality": "guessed"})
    hourly = cis.get(f"/api/v1/meters/{quinn.meter.pk}/readings/", {**span, "resolution": "hour", "quality": "valid"})

    assert bad.status_code == 400 and "guessed" in bad.content.decode() and "estimated_profile" in bad.content.decode()
    assert hourly.status_code == 400 and "resolution=raw" in hourly.content.decode()


@pytest.mark.django_db
def test_billing_staff_see_every_interval_behind_a_bill_from_its_page(mongo: Any, bill: User) -> None:
    quinn = make_consumer("quinn")
    the_month(quinn, bill)
    issued = Bill.objects.get(run=bill_run_execute(run=bill_run_create(run_date=DEC)), account=quinn.account)
    staff = Client()
    staff.force_login(bill)

    page = staff.get(f"/billing/bills/{issued.pk}/").content.decode()
    behind = staff.get(f"/billing/bills/{issued.pk}/intervals/", {"quality": "estimated"})
    consumer = session_client(quinn.user).get(f"/billing/bills/{issued.pk}/intervals/")

    assert f"/billing/bills/{issued.pk}/intervals/" in page and "estimated_reference_day" in page
    assert behind.status_code == 200
    text = behind.content.decode()
    assert "reference_day" in text and "profile+register" in text and "8.200" in text
    assert "badge quality-valid" not in text  # only the estimates were asked for
    assert consumer.status_code == 404
