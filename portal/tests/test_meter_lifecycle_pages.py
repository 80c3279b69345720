"""Issue 16 in the portal: billing staff exchange a meter from a form, work a re-bill proposal; the
consumer's dashboard runs on across an exchange and marks it."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import Bill, VeeException
from billing.rollups import rollups_rebuild
from billing.tests.test_rebill_proposals import bill_september, send_actuals
from billing.tests.test_rollups import quarters
from mdms.core import services
from mdms.core.localtime import local_midnight, local_today
from mdms.core.models import AuditLog, Meter, MeterExchange
from mdms.core.timeseries.readings import insert_readings

pytestmark = pytest.mark.django_db


def _staff(bill: Any) -> Client:
    client = Client()
    client.force_login(bill)
    return client


def _at(days_ago: int, hour: int = 14) -> dt.datetime:
    return local_midnight(local_today() - dt.timedelta(days=days_ago)) + dt.timedelta(hours=hour)


def test_billing_staff_exchange_a_meter_from_the_form_and_see_its_password_once(alice: Any, bill: Any) -> None:
    client = _staff(bill)
    page = client.get(f"/billing/meters/{alice.meter.pk}/")
    assert f"/billing/meters/{alice.meter.pk}/exchange/" in page.content.decode()
    at = _at(3)
    response = client.post(
        f"/billing/meters/{alice.meter.pk}/exchange/",
        {"new_serial": "PORTAL-NEW-1", "at": timezone.localtime(at).strftime("%Y-%m-%d %H:%M"),
         "old_final_register_kwh": "1234.5", "new_initial_register_kwh": "0", "work_order": "WO-77"},
    )  # fmt: skip
    assert response.status_code == 200
    body = response.content.decode()
    exchange = MeterExchange.objects.get(old_meter=alice.meter)
    assert (exchange.new_meter.serial, exchange.exchanged_at, exchange.old_final_register_kwh) == (
        "PORTAL-NEW-1", at, Decimal("1234.500")
    )  # fmt: skip
    assert 'id="new-meter-password"' in body
    assert Meter.objects.get(pk=alice.meter.pk).status == Meter.Status.REMOVED
    # The service wrote the one audit row, with the person who did it and the door.
    audit = AuditLog.objects.get(action=AuditLog.Action.METER_EXCHANGE)
    assert (audit.actor, audit.detail["via"], audit.detail["work_order"]) == (bill, "portal", "WO-77")
    # A removed meter offers no exchange any more.
    assert "exchange-link" not in client.get(f"/billing/meters/{alice.meter.pk}/").content.decode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"at": "in the future"}, "this time is in the future"),
        ({"new_serial": "BAD SERIAL"}, "Letters, digits"),
        ({"new_serial": "EXISTING"}, "registered already"),
        ({"old_final_register_kwh": "-1"}, "greater than or equal to 0"),
        ({"at": "2024-13-01 10:00"}, "Enter a valid date/time"),
        ({"at": "before install"}, "was installed at"),
    ],
)
def test_the_exchange_form_shows_what_is_wrong_and_changes_nothing(
    alice: Any, bill: Any, fields: dict[str, str], message: str
) -> None:
    Meter.objects.create(serial="EXISTING")
    future = timezone.localtime(timezone.now() + dt.timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    data = {"new_serial": "PORTAL-NEW-2", "at": timezone.localtime(_at(2)).strftime("%Y-%m-%d %H:%M"),
            "old_final_register_kwh": "10", "new_initial_register_kwh": "0"}  # fmt: skip
    data.update(fields)
    if data["at"] == "in the future":
        data["at"] = future
    if data["at"] == "before install":
        data["at"] = "2024-06-01 10:00"  # alice's meter was installed on 2025-01-01
    response = _staff(bill).post(f"/billing/meters/{alice.meter.pk}/exchange/", data)
    assert response.status_code == 200
    body = response.content.decode()
    assert message.replace("'", "&#x27;") in body or message in body, body[-3000:]
    assert 'id="exchange-form"' in body
    assert not MeterExchange.objects.exists()
    assert Meter.objects.get(pk=alice.meter.pk).status == Meter.Status.ACTIVE
    assert not AuditLog.objects.filter(action=AuditLog.Action.METER_EXCHANGE).exists()


def test_only_billing_staff_open_the_exchange_form(alice: Any, olivia: Any) -> None:
    for user in (alice.user, olivia):
        client = Client()
        client.force_login(user)
        assert client.get(f"/billing/meters/{alice.meter.pk}/exchange/").status_code == 404
        response = client.post(f"/billing/meters/{alice.meter.pk}/exchange/", {"new_serial": "X"})
        assert response.status_code == 404
    assert not MeterExchange.objects.exists()


def test_the_consumer_dashboard_runs_on_across_an_exchange_and_marks_it(alice: Any, mongo: Any) -> None:
    today = local_today()
    at = _at(5)
    services.meter_exchange(
        premise=alice.account.premise, old_meter=alice.meter, new_meter_serial="ALICE-NEW", at=at,
        old_final_register_kwh=Decimal("500"), new_initial_register_kwh=Decimal("0"),
    )  # fmt: skip
    new = Meter.objects.get(serial="ALICE-NEW")
    # The old meter up to the exchange (0.25 a quarter), the new one from it (0.5 a quarter).
    insert_readings(quarters(alice.meter.pk, local_midnight(today - dt.timedelta(days=20)), at, kwh=0.25))
    insert_readings(quarters(new.pk, at, local_midnight(today), kwh=0.5))
    rollups_rebuild(first_day=today - dt.timedelta(days=21), end_day=today + dt.timedelta(days=1))
    client = Client()
    client.force_login(alice.user)
    home = client.get("/").content.decode()
    assert f"/meters/{new.pk}/" in home
    response = client.get(f"/meters/{new.pk}/")
    assert response.status_code == 200
    figure = json.loads(json.dumps(response.context["figures"]["daily"]))
    bars = dict(zip(figure["data"][0]["x"], figure["data"][0]["y"], strict=True))
    # Before the exchange: the old meter's 24 kWh a day; on the exchange day 14 h x 4 x 0.25 = 14 from the
    # old meter and 10 h x 4 x 0.5 = 20 from the new: 34; after it, 48 a day.
    assert bars[(today - dt.timedelta(days=10)).isoformat()] == 24.0
    assert bars[(today - dt.timedelta(days=5)).isoformat()] == 34.0
    assert bars[(today - dt.timedelta(days=3)).isoformat()] == 48.0
    (shape,) = figure["layout"]["shapes"]
    (note,) = figure["layout"]["annotations"]
    assert shape["x0"] == timezone.localtime(at).strftime("%Y-%m-%dT%H:%M")
    assert note["text"] == f"Meter exchanged {timezone.localtime(at):%d %b %H:%M}: {alice.meter.serial} → ALICE-NEW"
    assert "was replaced by ALICE-NEW" in response.content.decode()


def test_billing_staff_accept_a_proposed_rebill_from_its_page(alice: Any, bill: Any, mongo: Any) -> None:
    issued = bill_september(alice)
    send_actuals(alice.meter.serial, 1.5)
    proposal = VeeException.objects.get(kind=VeeException.Kind.REBILL_PROPOSED)
    client = _staff(bill)
    queue = client.get("/billing/exceptions/").content.decode()
    assert "5.000 kWh, 1.25 EUR (4 intervals)" in queue
    page = client.get(f"/billing/exceptions/{proposal.pk}/").content.decode()
    assert "190.00" in page and "191.25" in page and "linear" in page
    response = client.post(f"/billing/exceptions/{proposal.pk}/", {"action": "accept"})
    new = Bill.objects.get(account=alice.account, is_current=True)
    assert response.status_code == 302 and response["Location"] == f"/billing/bills/{new.pk}/"
    assert (new.version, new.total, Bill.objects.get(pk=issued.pk).is_current) == (2, Decimal("191.25"), False)
    again = client.post(f"/billing/exceptions/{proposal.pk}/", {"action": "accept"}, follow=True)
    assert "already been worked" in again.content.decode()
    assert Bill.objects.filter(account=alice.account).count() == 2


def test_billing_staff_dismiss_a_proposal_with_a_reason(alice: Any, bill: Any, mongo: Any) -> None:
    bill_september(alice)
    send_actuals(alice.meter.serial, 1.5)
    proposal = VeeException.objects.get(kind=VeeException.Kind.REBILL_PROPOSED)
    client = _staff(bill)
    empty = client.post(f"/billing/exceptions/{proposal.pk}/", {"action": "dismiss", "dismiss-reason": ""})
    assert "This field is required" in empty.content.decode()
    client.post(f"/billing/exceptions/{proposal.pk}/", {"action": "dismiss", "dismiss-reason": "credited by phone"})
    proposal.refresh_from_db()
    assert (proposal.status, proposal.resolution) == ("resolved", "Dismissed: credited by phone")
    assert Bill.objects.filter(account=alice.account).count() == 1
