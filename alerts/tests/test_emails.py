"""E-mail of notifications: marked sent only once the backend accepted it, retried without a second
row, and one e-mail per breach even when two beat runs go at once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import override_settings

from alerts import services
from alerts.models import AlertRule, Notification
from alerts.tests.helpers import local, store
from mdms.core.testing import Person, run_at_once

NOV11, NOV12 = dt.date(2026, 11, 11), dt.date(2026, 11, 12)
FAILING = "alerts.tests.test_emails.RefusingBackend"


class RefusingBackend(BaseEmailBackend):
    """A mail server that is down (outside the system, so a fake is fair)."""

    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError("SMTP server unreachable")


def _breach(person: Person) -> AlertRule:
    rule = services.rule_create(
        user=person.user, meter=person.meter, kind="daily_kwh", threshold=Decimal("40"), minutes=None, now=local(NOV11)
    )
    store(person.meter.pk, local(NOV11), local(NOV12), kwh=lambda ts: 0.5)
    return rule


@pytest.mark.django_db
def test_a_failed_send_is_retried_later_without_a_second_notification(alice: Person, mongo: Any) -> None:
    _breach(alice)
    now = local(NOV12, 1)
    with override_settings(EMAIL_BACKEND=FAILING):
        assert services.rules_evaluate_due(now=now).notifications == 1
        result = services.notification_emails_send(now=now)
    assert (result.sent, result.failed) == (0, 1)
    notification = Notification.objects.get()
    assert notification.email_state == Notification.EmailState.FAILED
    assert notification.emailed_at is None and "unreachable" in notification.email_error
    assert notification.email_next_at == now + services.EMAIL_RETRY_FIRST

    # Before the retry is due nothing is tried; once it is, the backend is back and takes it.
    assert services.notification_emails_send(now=now + dt.timedelta(minutes=1)).sent == 0
    later = now + services.EMAIL_RETRY_FIRST
    assert services.rules_evaluate_due(now=later).notifications == 0
    assert services.notification_emails_send(now=later).sent == 1
    assert services.notification_emails_send(now=later + dt.timedelta(hours=1)).sent == 0

    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert (notification.email_state, notification.email_attempts, notification.emailed_at) == ("sent", 2, later)
    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_a_send_failing_for_days_is_given_up_and_counted(alice: Person, mongo: Any) -> None:
    _breach(alice)
    now = local(NOV12, 1)
    services.rules_evaluate_due(now=now)
    with override_settings(EMAIL_BACKEND=FAILING):
        for _attempt in range(services.EMAIL_MAX_ATTEMPTS):
            services.notification_emails_send(now=now)
            now += services.EMAIL_RETRY_MAX
    notification = Notification.objects.get()
    assert notification.email_state == Notification.EmailState.ABANDONED
    assert notification.email_attempts == services.EMAIL_MAX_ATTEMPTS
    assert services.notification_emails_send(now=now + dt.timedelta(days=30)).sent == 0
    assert not mail.outbox


@pytest.mark.django_db
def test_no_address_keeps_the_notification_in_the_portal_only(alice: Person, mongo: Any) -> None:
    alice.user.email = ""
    alice.user.save()
    alice.customer.email = ""
    alice.customer.save()
    _breach(alice)
    services.rules_evaluate_due(now=local(NOV12, 1))
    assert services.notification_emails_send(now=local(NOV12, 1)).skipped == 1
    assert Notification.objects.get().email_state == Notification.EmailState.NO_ADDRESS
    assert not mail.outbox


@pytest.mark.django_db
def test_muting_stops_an_e_mail_still_waiting(alice: Person, mongo: Any) -> None:
    rule = _breach(alice)
    services.rules_evaluate_due(now=local(NOV12, 1))
    services.rule_set_muted(rule=rule, muted=True)
    services.notification_emails_send(now=local(NOV12, 1))
    assert Notification.objects.get().email_state == Notification.EmailState.MUTED
    assert not mail.outbox


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("role_groups")
def test_two_runs_at_once_tell_a_breach_once(alice: Person, bob: Person, mongo: Any) -> None:
    for person in (alice, bob):
        _breach(person)
    now = local(NOV12, 1)

    def beat() -> None:
        services.rules_evaluate_due(now=now)
        services.notification_emails_send(now=now)

    run_at_once(beat, beat)
    assert Notification.objects.count() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.org", "bob@example.org"]
