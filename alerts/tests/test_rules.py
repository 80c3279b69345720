"""Each kind of alert: a breach is told exactly once (one notification, one e-mail), muted rules tell
nothing, unmuting does not replay, and a new episode after recovery is told again."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail

from alerts import services
from alerts.evaluate import Episode, days_over, power_episodes, silence_since
from alerts.models import AlertRule, Notification
from alerts.tests.helpers import local, store
from mdms.core.testing import Person, make_consumer
from mdms.core.timeseries.usage_alerts import PowerPoint

pytestmark = pytest.mark.django_db

NOV11, NOV12 = dt.date(2026, 11, 11), dt.date(2026, 11, 12)


def run(now: dt.datetime) -> tuple[int, int]:
    """One beat run: (notifications created, e-mails sent)."""
    evaluated = services.rules_evaluate_due(now=now)
    assert evaluated.errors == 0
    return evaluated.notifications, services.notification_emails_send(now=now).sent


def rule(person: Person, kind: str, threshold: str | None = None, minutes: int | None = None, **kw: Any) -> AlertRule:
    return services.rule_create(
        user=person.user,
        meter=person.meter,
        kind=kind,
        threshold=Decimal(threshold) if threshold else None,
        minutes=minutes,
        **kw,
    )


# The pure judges.


def test_days_over_keeps_only_days_above_the_threshold() -> None:
    usage = {NOV12: 30.0, NOV11: 40.5, dt.date(2026, 11, 10): 40.0}
    assert days_over(usage, 40.0) == [(NOV11, 40.5)]


def _points(start: dt.datetime, kws: list[float | None]) -> list[PowerPoint]:
    return [
        PowerPoint(ts=start + (n + 1) * dt.timedelta(minutes=15), interval_s=900, kw=kw)
        for n, kw in enumerate(kws)
        if kw is not None
    ]


def test_power_episodes_are_runs_above_the_threshold_broken_by_a_drop_or_a_long_gap() -> None:
    t0 = dt.datetime(2026, 11, 12, 17, tzinfo=dt.UTC)
    # above for 45 minutes, a drop, above 15 minutes, a 15-minute gap (tolerated), above again,
    # then a 2-hour gap (ends the run) and one more interval above.
    kws: list[float | None] = [1, 5, 5, 5, 2, 4, None, 4, *[None] * 8, 6]
    episodes = power_episodes(_points(t0, kws), 3.0, gap=dt.timedelta(hours=1))
    assert episodes == [
        Episode(t0 + dt.timedelta(minutes=15), t0 + dt.timedelta(minutes=60), 5.0),
        Episode(t0 + dt.timedelta(minutes=75), t0 + dt.timedelta(minutes=120), 4.0),
        Episode(t0 + dt.timedelta(minutes=240), t0 + dt.timedelta(minutes=255), 6.0),
    ]
    assert episodes[0].minutes == 45


def test_silence_counts_from_the_last_time_heard() -> None:
    heard = dt.datetime(2026, 11, 11, 12, tzinfo=dt.UTC)
    assert silence_since(heard, heard, heard + dt.timedelta(hours=23, minutes=59)) is None
    assert silence_since(heard, heard, heard + dt.timedelta(hours=24)) == heard
    armed = heard + dt.timedelta(hours=5)
    assert silence_since(None, armed, armed + dt.timedelta(hours=25)) == armed


# daily_kwh


def test_a_day_above_the_threshold_is_told_once(alice: Person, mongo: Any) -> None:
    r = rule(alice, "daily_kwh", "40", now=local(NOV11))
    store(alice.meter.pk, local(NOV11), local(NOV12), kwh=lambda ts: 0.5)  # 48 kWh
    store(alice.meter.pk, local(NOV12), local(NOV12, 15))  # 15 kWh so far today
    now = local(NOV12, 15, 5)

    assert run(now) == (1, 1)
    assert run(now + dt.timedelta(minutes=5)) == (0, 0)

    [sent] = mail.outbox
    notification = Notification.objects.get()
    assert (notification.user, notification.rule, notification.kind) == (alice.user, r, "daily_kwh")
    assert notification.breach_key == f"{r.pk}:daily_kwh:2026-11-11"
    assert notification.value == pytest.approx(48.0)
    assert notification.email_state == Notification.EmailState.SENT and notification.emailed_at == now
    assert sent.to == ["alice@example.org"]
    assert "48.0 kWh" in sent.subject and "40" in sent.subject
    assert f"/meters/{alice.meter.pk}/alerts/" in sent.body and "/notifications/" in sent.body


def test_today_is_told_as_soon_as_it_crosses(alice: Person, mongo: Any) -> None:
    rule(alice, "daily_kwh", "10", now=local(NOV12))
    store(alice.meter.pk, local(NOV12), local(NOV12, 9))  # 9 kWh by 09:00
    assert run(local(NOV12, 9, 5)) == (0, 0)
    store(alice.meter.pk, local(NOV12, 9), local(NOV12, 11))  # 11 kWh by 11:00
    assert run(local(NOV12, 11, 5)) == (1, 1)
    store(alice.meter.pk, local(NOV12, 11), local(NOV12, 20))
    assert run(local(NOV12, 20, 5)) == (0, 0)
    assert "so far" in Notification.objects.get().message


def test_a_muted_rule_tells_nothing_and_unmuting_does_not_replay(alice: Person, mongo: Any) -> None:
    r = rule(alice, "daily_kwh", "40", now=local(NOV11))
    services.rule_set_muted(rule=r, muted=True)
    store(alice.meter.pk, local(NOV11), local(NOV12), kwh=lambda ts: 0.5)
    assert run(local(NOV12, 1)) == (0, 0)

    services.rule_set_muted(rule=r, muted=False, now=local(NOV12, 8))
    store(alice.meter.pk, local(NOV12), local(NOV12, 9))
    assert run(local(NOV12, 9)) == (0, 0)  # the 11th broke it while muted; the 12th has not
    assert not Notification.objects.exists() and not mail.outbox

    store(alice.meter.pk, local(NOV12, 9), local(NOV12, 23), kwh=lambda ts: 0.75)
    assert run(local(NOV12, 23)) == (1, 1)  # a breach after unmuting is told


def test_a_consumer_who_moved_out_hears_nothing_more(mongo: Any) -> None:
    person = make_consumer("leaver", move_in=dt.date(2026, 1, 1))
    rule(person, "daily_kwh", "1", now=local(NOV11))
    person.account.move_out_date = NOV11
    person.account.save()
    store(person.meter.pk, local(NOV11), local(NOV12))
    assert run(local(NOV12, 1)) == (0, 0)


# power_over


def test_a_power_episode_is_told_once_and_a_new_one_after_a_drop_again(alice: Person, mongo: Any) -> None:
    r = rule(alice, "power_over", "3", minutes=30, now=local(NOV12))

    def power(ts: dt.datetime) -> float:
        begin = ts - dt.timedelta(minutes=15)
        high = local(NOV12, 18) <= begin < local(NOV12, 19, 15) or local(NOV12, 21) <= begin < local(NOV12, 21, 45)
        return 5.0 if high else 1.0

    store(alice.meter.pk, local(NOV12), local(NOV12, 18, 15), power_kw=power)
    assert run(local(NOV12, 18, 20)) == (0, 0)  # 15 minutes above: not yet
    store(alice.meter.pk, local(NOV12, 18, 15), local(NOV12, 18, 45), power_kw=power)
    assert run(local(NOV12, 18, 50)) == (1, 1)  # 45 minutes above: told
    store(alice.meter.pk, local(NOV12, 18, 45), local(NOV12, 20), power_kw=power)
    assert run(local(NOV12, 20, 5)) == (0, 0)  # the same episode, longer, then over
    first = Notification.objects.get()
    assert (first.episode_start, first.episode_end) == (local(NOV12, 18), local(NOV12, 19, 15))
    assert first.breach_key == f"{r.pk}:power_over:20261112T170000Z"

    store(alice.meter.pk, local(NOV12, 20), local(NOV12, 23), power_kw=power)
    assert run(local(NOV12, 23, 5)) == (1, 1)  # a new episode after power came back down
    assert run(local(NOV12, 23, 10)) == (0, 0)
    assert len(mail.outbox) == 2
    assert Notification.objects.order_by("pk").last().episode_start == local(NOV12, 21)  # type: ignore[union-attr]


def test_an_episode_longer_than_the_look_back_is_still_one_episode(alice: Person, mongo: Any) -> None:
    rule(alice, "power_over", "3", minutes=60, now=local(NOV11))
    store(alice.meter.pk, local(NOV11, 12), local(NOV11, 14), power_kw=lambda ts: 4.0)
    assert run(local(NOV11, 14)) == (1, 1)
    # Above the whole time since: by now the episode's start is far outside the look-back window.
    store(alice.meter.pk, local(NOV11, 14), local(NOV12, 20), power_kw=lambda ts: 4.0)
    assert run(local(NOV12, 20)) == (0, 0)
    assert Notification.objects.get().episode_end == local(NOV12, 20)


# no_data


def test_a_silence_is_told_once_and_again_after_the_meter_spoke(alice: Person, mongo: Any) -> None:
    rule(alice, "no_data", now=local(NOV11))
    store(alice.meter.pk, local(NOV11), local(NOV11, 12))  # last heard at 12:00 on the 11th
    assert run(local(NOV12, 11, 55)) == (0, 0)
    assert run(local(NOV12, 12)) == (1, 1)
    assert run(local(NOV12, 18)) == (0, 0)
    assert "24 hours" in mail.outbox[0].subject

    store(alice.meter.pk, local(NOV12, 18), local(NOV12, 19))  # it speaks again, then falls silent
    assert run(local(NOV12, 20)) == (0, 0)
    assert run(local(dt.date(2026, 11, 13), 19)) == (1, 1)
    assert Notification.objects.count() == 2


# projected_bill


def test_a_projected_bill_above_the_threshold_is_told_once_a_period(alice: Person, mongo: Any) -> None:
    rule(alice, "projected_bill", "150", now=local(dt.date(2026, 10, 1)))
    # 1 kWh an hour at 0.25 EUR plus 10 EUR a month: 190 EUR for November.
    store(alice.meter.pk, local(dt.date(2026, 10, 10)), local(NOV12, 10))
    now = local(NOV12, 10, 30)
    assert run(now) == (1, 1)
    assert run(now + dt.timedelta(hours=2)) == (0, 0)
    notification = Notification.objects.get()
    assert notification.value == pytest.approx(190.0)
    assert "190.00 EUR" in mail.outbox[0].subject


def test_a_projected_bill_is_judged_at_most_hourly(alice: Person, mongo: Any) -> None:
    r = rule(alice, "projected_bill", "500", now=local(NOV11))
    store(alice.meter.pk, local(dt.date(2026, 10, 10)), local(NOV12, 10))
    now = local(NOV12, 10, 30)
    assert services.rules_evaluate_due(now=now).rules == 1
    assert services.rules_evaluate_due(now=now + dt.timedelta(minutes=5)).rules == 0
    assert services.rules_evaluate_due(now=now + dt.timedelta(hours=1)).rules == 1
    r.refresh_from_db()
    assert r.checked_at == now + dt.timedelta(hours=1)
