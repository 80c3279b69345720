"""The portal side of alerts: the consumer's rules and notifications (others' are 404), form errors,
CSRF, the header's unread count, the dashboard's projected bill, the operators' volume page."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from alerts import services
from alerts.evaluate import Breach
from alerts.models import AlertRule, Notification
from alerts.tests.helpers import store
from mdms.core.testing import Person

pytestmark = pytest.mark.django_db


def _notify(person: Person, key: str, *, kind: str = "daily_kwh") -> Notification:
    rule = services.rule_create(user=person.user, meter=person.meter, kind=kind, threshold=Decimal("5"), minutes=None)
    notification = services.notification_record(
        rule=rule, breach=Breach(key=f"{rule.pk}:{key}", subject=f"Subject {key}", message=f"Message {key}", value=6.0)
    )
    assert notification is not None
    return notification


def test_a_consumer_adds_an_alert(client: Client, alice: Person) -> None:
    client.force_login(alice.user)
    url = f"/meters/{alice.meter.pk}/alerts/"
    assert "Add an alert" in client.get(url).content.decode()

    response = client.post(url, {"kind": "power_over", "threshold": "3.5", "minutes": "30"})

    assert response.status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.user, rule.meter, rule.kind, rule.threshold, rule.minutes, rule.muted) == (
        alice.user, alice.meter, "power_over", Decimal("3.50"), 30, False
    )  # fmt: skip
    page = client.get(url).content.decode()
    assert "Power above 3.50 kW for 30 minutes or more" in page
    assert "Alert added" in page


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"kind": "daily_kwh", "threshold": ""}, "threshold", "Enter the level to watch (kWh a day)."),
        ({"kind": "daily_kwh", "threshold": "-2"}, "threshold", "Enter a number above zero."),
        ({"kind": "daily_kwh", "threshold": "0"}, "threshold", "Enter a number above zero."),
        ({"kind": "daily_kwh", "threshold": "20000"}, "threshold", "Enter at most 10,000 (kWh a day)"),
        ({"kind": "daily_kwh", "threshold": "abc"}, "threshold", "Enter a number."),
        ({"kind": "power_over", "threshold": "3", "minutes": ""}, "minutes", "Enter how many minutes"),
        ({"kind": "power_over", "threshold": "3", "minutes": "0"}, "minutes", "Enter from 1 to 1440 minutes"),
        ({"kind": "power_over", "threshold": "3", "minutes": "1441"}, "minutes", "Enter from 1 to 1440 minutes"),
        ({"kind": "power_over", "threshold": "5000", "minutes": "5"}, "threshold", "Enter at most 1,000 (kW)"),
        ({"kind": "projected_bill", "threshold": "2000000"}, "threshold", "Enter at most 1,000,000"),
        ({"kind": "sometimes", "threshold": "3"}, "kind", "Select a valid choice."),
    ],
)
def test_a_bad_alert_is_refused_with_the_reason(
    client: Client, alice: Person, data: dict[str, str], field: str, message: str
) -> None:
    client.force_login(alice.user)
    response = client.post(f"/meters/{alice.meter.pk}/alerts/", data)
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert message.split("(")[0].strip() in response.content.decode()
    assert not AlertRule.objects.exists()


def test_no_data_needs_no_figures_and_a_duplicate_is_refused(client: Client, alice: Person) -> None:
    client.force_login(alice.user)
    url = f"/meters/{alice.meter.pk}/alerts/"
    assert client.post(url, {"kind": "no_data", "threshold": "12", "minutes": "3"}).status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.threshold, rule.minutes) == (None, None)
    again = client.post(url, {"kind": "no_data"})
    assert again.status_code == 400
    assert "You already have this alert on this meter." in again.content.decode()


def test_a_consumer_edits_mutes_and_deletes_an_alert(client: Client, alice: Person) -> None:
    rule = services.rule_create(
        user=alice.user, meter=alice.meter, kind="daily_kwh", threshold=Decimal("30"), minutes=None
    )
    client.force_login(alice.user)
    base = f"/meters/{alice.meter.pk}/alerts/{rule.pk}/"
    assert 'value="30.00"' in client.get(base).content.decode()
    assert client.post(base, {"kind": "daily_kwh", "threshold": "25"}).status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == Decimal("25.00")

    armed = rule.armed_at
    assert client.post(f"{base}mute/", {"muted": "1"}).status_code == 302
    rule.refresh_from_db()
    assert rule.muted
    assert client.post(f"{base}mute/", {"muted": "0"}).status_code == 302
    rule.refresh_from_db()
    assert not rule.muted and rule.armed_at > armed
    assert client.post(f"{base}mute/", {"muted": "yes"}).status_code == 400

    _notify(alice, "kept")
    assert client.post(f"{base}delete/").status_code == 302
    assert not AlertRule.objects.filter(pk=rule.pk).exists()
    assert Notification.objects.filter(user=alice.user).count() == 1  # what it told stays


def test_another_consumers_alerts_and_notifications_are_not_found(client: Client, alice: Person, bob: Person) -> None:
    bobs = services.rule_create(user=bob.user, meter=bob.meter, kind="no_data", threshold=None, minutes=None)
    bobs_note = _notify(bob, "bob")
    client.force_login(alice.user)
    assert client.get(f"/meters/{bob.meter.pk}/alerts/").status_code == 404
    assert client.post(f"/meters/{bob.meter.pk}/alerts/", {"kind": "no_data"}).status_code == 404
    for meter_pk in (bob.meter.pk, alice.meter.pk):
        base = f"/meters/{meter_pk}/alerts/{bobs.pk}/"
        assert client.get(base).status_code == 404
        assert client.post(base, {"kind": "no_data"}).status_code == 404
        assert client.post(f"{base}mute/", {"muted": "1"}).status_code == 404
        assert client.post(f"{base}delete/").status_code == 404
    assert client.post(f"/notifications/{bobs_note.pk}/read/").status_code == 404
    assert "Subject bob" not in client.get("/notifications/").content.decode()
    client.post("/notifications/read/")
    bobs.refresh_from_db()
    bobs_note.refresh_from_db()
    assert not bobs.muted and bobs_note.read_at is None


def test_staff_have_no_alerts_page_on_a_customers_meter(client: Client, alice: Person, olivia: Any) -> None:
    client.force_login(olivia)
    assert client.get(f"/meters/{alice.meter.pk}/alerts/").status_code == 404


def test_forms_need_the_csrf_token(alice: Person) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice.user)
    assert client.post(f"/meters/{alice.meter.pk}/alerts/", {"kind": "no_data"}).status_code == 403
    assert client.post("/notifications/read/").status_code == 403
    assert not AlertRule.objects.exists()


def test_notifications_list_unread_first_in_the_header_and_mark_read(client: Client, alice: Person) -> None:
    first, second = _notify(alice, "one"), _notify(alice, "two")
    client.force_login(alice.user)
    page = client.get("/notifications/").content.decode()
    assert "Subject one" in page and "Subject two" in page
    assert 'title="unread">2</span>' in page  # the header's badge
    assert page.index("Subject two") < page.index("Subject one")  # newest first

    assert client.post(f"/notifications/{first.pk}/read/").status_code == 302
    first.refresh_from_db()
    assert first.read_at is not None
    assert 'title="unread">1</span>' in client.get(f"/meters/{alice.meter.pk}/").content.decode()

    client.post("/notifications/read/")
    second.refresh_from_db()
    assert second.read_at is not None
    assert 'title="unread"' not in client.get("/notifications/").content.decode()


def test_the_dashboard_shows_the_projected_bill_with_its_range(client: Client, alice: Person, mongo: Any) -> None:
    now = timezone.now()
    store(alice.meter.pk, now - dt.timedelta(days=35), now - dt.timedelta(hours=1))
    client.force_login(alice.user)
    response = client.get(f"/meters/{alice.meter.pk}/")
    card = response.context["projection"]
    assert card is not None
    projection = card.projection
    page = response.content.decode()
    assert f'id="projected-bill">{projection.point} EUR' in page
    assert f'id="projected-low">{projection.low}<' in page and f'id="projected-high">{projection.high}<' in page
    assert 0 <= card.low_pct <= card.point_pct <= card.high_pct <= 100
    assert f"/meters/{alice.meter.pk}/alerts/" in page


def test_a_dashboard_without_readings_says_there_is_nothing_to_project(
    client: Client, alice: Person, mongo: Any
) -> None:
    client.force_login(alice.user)
    assert "Not enough readings yet to project" in client.get(f"/meters/{alice.meter.pk}/").content.decode()


def test_operators_see_the_notification_volume(client: Client, alice: Person, bob: Person, olivia: Any) -> None:
    _notify(alice, "a1")
    _notify(alice, "a2", kind="no_data")
    old = _notify(bob, "b1", kind="power_over")
    # One from three weeks ago is outside the 14 days.
    Notification.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=21))
    failed = _notify(bob, "b2")
    Notification.objects.filter(pk=failed.pk).update(email_state=Notification.EmailState.FAILED)
    services.rule_set_muted(rule=AlertRule.objects.filter(user=bob.user).first(), muted=True)  # type: ignore[arg-type]

    client.force_login(olivia)
    response = client.get("/operator/notifications/")
    assert response.status_code == 200
    volume = response.context["volume"]
    assert volume.total == 3
    assert volume.days[0].day == timezone.localdate() and volume.days[0].total == 3
    assert dict(zip([k for k, _ in volume.kinds], volume.total_by_kind, strict=True)) == {
        "daily_kwh": 2, "projected_bill": 0, "power_over": 0, "no_data": 1,
    }  # fmt: skip
    assert (volume.rules, volume.rules_muted, volume.emails_failing) == (4, 1, 1)
    page = response.content.decode()
    assert 'id="emails-failing">1<' in page and 'id="rules-muted">1<' in page

    client.force_login(alice.user)
    assert client.get("/operator/notifications/").status_code == 404
