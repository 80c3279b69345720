"""Writes of alerts: rules, evaluating them into notifications, e-mailing those, marking them read.

Once per breach is settled by the database: Notification.breach_key is unique, and a rule is
evaluated under a row lock taken with SKIP LOCKED, so two beat runs at once split the rules
between them instead of judging one twice. The e-mail of a notification is claimed with a
compare-and-swap on its state before it is handed to the mail backend, marked sent only when the
backend accepted it, and retried with a backoff otherwise; a retry never makes a second row.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from alerts import evaluate
from alerts.models import AlertRule, Notification
from mdms.core.models import Account, Meter

log = logging.getLogger(__name__)

# A projected bill moves slowly and costs a profile read: judged at most this often per rule.
PROJECTION_EVERY = dt.timedelta(hours=1)
# E-mail retries: 5 minutes, doubling, at most 6 hours apart; after EMAIL_MAX_ATTEMPTS (about two
# days of trying) the e-mail is abandoned. The notification stays in the portal either way.
EMAIL_RETRY_FIRST = dt.timedelta(minutes=5)
EMAIL_RETRY_MAX = dt.timedelta(hours=6)
EMAIL_MAX_ATTEMPTS = 12
# A claim older than this is from a worker that died mid-send: the e-mail is tried again.
EMAIL_CLAIM_STALE = dt.timedelta(minutes=10)
# E-mails handed to the backend per sweep (the rest wait for the next run, 5 minutes later).
EMAIL_BATCH = 200


# Rules.


def rule_create(
    *,
    user: User,
    meter: Meter,
    kind: str,
    threshold: Decimal | None,
    minutes: int | None,
    now: dt.datetime | None = None,
) -> AlertRule:
    rule = AlertRule(user=user, meter=meter, kind=kind, armed_at=now or timezone.now())
    _set_figures(rule, threshold, minutes)
    rule.save()
    return rule


def rule_update(*, rule: AlertRule, kind: str, threshold: Decimal | None, minutes: int | None) -> AlertRule:
    """Change what a rule watches; what it already told stays told (a breach key names the rule)."""
    rule.kind = kind
    _set_figures(rule, threshold, minutes)
    rule.save(update_fields=["kind", "threshold", "minutes", "updated_at"])
    return rule


def _set_figures(rule: AlertRule, threshold: Decimal | None, minutes: int | None) -> None:
    rule.threshold = None if rule.kind == AlertRule.Kind.NO_DATA else threshold
    rule.minutes = minutes if rule.kind == AlertRule.Kind.POWER_OVER else None


def rule_set_muted(*, rule: AlertRule, muted: bool, now: dt.datetime | None = None) -> AlertRule:
    """Mute or unmute. Unmuting re-arms the rule from now: breaches over while muted are never told."""
    if rule.muted == muted:
        return rule
    rule.muted = muted
    fields = ["muted", "updated_at"]
    if not muted:
        rule.armed_at = now or timezone.now()
        fields.append("armed_at")
    rule.save(update_fields=fields)
    return rule


def rule_delete(*, rule: AlertRule) -> None:
    """Delete a rule; its notifications stay in the consumer's list (rule set to null)."""
    rule.delete()


# Evaluation.


def tenancy(rule: AlertRule, today: dt.date) -> Account | None:
    """The rule owner's account at the meter's premises on `today`, if any.

    A consumer who moved out no longer hears about the meter: the next household's usage is theirs.
    """
    if rule.meter.premise_id is None:
        return None
    return (
        Account.objects.filter(
            customer__user_id=rule.user_id, premise_id=rule.meter.premise_id, move_in_date__lte=today
        )
        .filter(Q(move_out_date__isnull=True) | Q(move_out_date__gt=today))
        .select_related("tariff")
        .prefetch_related("tariff__tou_periods")
        .order_by("-move_in_date")
        .first()
    )


def notification_record(*, rule: AlertRule, breach: evaluate.Breach) -> Notification | None:
    """The notification of a breach, or None when it was told already (or is a power episode already told).

    A power episode is seen again on every run, possibly cut differently at the edge of the look-back
    window: any earlier notification of the rule whose episode overlaps it (or ends within the gap
    that still joins two runs) is the same episode, and only its end moves on.
    """
    if breach.episode_start is not None and breach.episode_end is not None:
        same = Notification.objects.filter(
            rule=rule,
            kind=AlertRule.Kind.POWER_OVER,
            episode_start__lte=breach.episode_end,
            episode_end__gte=breach.episode_start - evaluate.POWER_GAP,
        )
        if same.exists():
            same.filter(episode_end__lt=breach.episode_end).update(episode_end=breach.episode_end)
            return None
    try:
        with transaction.atomic():
            notification, created = Notification.objects.get_or_create(
                breach_key=breach.key,
                defaults={
                    "user_id": rule.user_id,
                    "rule": rule,
                    "meter_id": rule.meter_id,
                    "kind": rule.kind,
                    "subject": breach.subject[:200],
                    "message": breach.message,
                    "value": breach.value,
                    "episode_start": breach.episode_start,
                    "episode_end": breach.episode_end,
                },
            )
    except IntegrityError:  # another run recorded it between our look and our insert
        return None
    return notification if created else None


def rule_evaluate(*, rule_pk: int, now: dt.datetime) -> int:
    """Judge one rule now and record its new breaches; returns how many. A rule another run holds is skipped."""
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("meter", "user")
            .filter(pk=rule_pk, muted=False)
            .first()
        )
        if rule is None:
            return 0
        account = tenancy(rule, timezone.localtime(now).date())
        created = 0
        if account is not None:
            for breach in evaluate.evaluate(rule, account, now):
                created += notification_record(rule=rule, breach=breach) is not None
        AlertRule.objects.filter(pk=rule.pk).update(checked_at=now)
        return created


@dataclass(frozen=True)
class EvaluationResult:
    rules: int
    notifications: int
    errors: int


def rules_evaluate_due(*, now: dt.datetime | None = None) -> EvaluationResult:
    """Judge every unmuted rule that is due (projected bills hourly, the rest every run)."""
    now = now or timezone.now()
    due = AlertRule.objects.filter(muted=False).filter(
        ~Q(kind=AlertRule.Kind.PROJECTED_BILL) | Q(checked_at__isnull=True) | Q(checked_at__lte=now - PROJECTION_EVERY)
    )
    rules = notifications = errors = 0
    for pk in due.order_by("pk").values_list("pk", flat=True):
        try:
            notifications += rule_evaluate(rule_pk=pk, now=now)
        except Exception:  # one bad rule never stops the others; the next run tries it again
            log.exception("alert rule %s could not be evaluated", pk)
            errors += 1
        rules += 1
    return EvaluationResult(rules, notifications, errors)


# E-mail.


def _address(user: User) -> str:
    if user.email:
        return user.email
    customer = getattr(user, "customer", None)
    return customer.email if customer is not None and customer.email else ""


def _body(notification: Notification) -> str:
    base = settings.PORTAL_BASE_URL.rstrip("/")
    lines = [notification.message, "", f"All your notifications: {base}{reverse('notifications')}"]
    if notification.rule_id is not None:
        alerts = reverse("consumer_alerts", args=[notification.meter_id])
        lines.append(f"Change or mute this alert: {base}{alerts}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class EmailResult:
    sent: int
    failed: int
    skipped: int


def notification_emails_send(*, now: dt.datetime | None = None, limit: int = EMAIL_BATCH) -> EmailResult:
    """Hand waiting e-mails to the mail backend: new ones, failed ones whose retry is due, stale claims."""
    now = now or timezone.now()
    State = Notification.EmailState
    waiting = Notification.objects.filter(
        Q(email_state=State.PENDING)
        | Q(email_state=State.FAILED, email_next_at__lte=now)
        | Q(email_state=State.SENDING, email_claimed_at__lt=now - EMAIL_CLAIM_STALE)
    ).order_by("pk")
    sent = failed = skipped = 0
    for candidate in waiting.values("pk", "email_state", "email_attempts")[:limit]:
        claimed = Notification.objects.filter(
            pk=candidate["pk"], email_state=candidate["email_state"], email_attempts=candidate["email_attempts"]
        ).update(email_state=State.SENDING, email_claimed_at=now)
        if not claimed:  # another sweep has it
            continue
        notification = Notification.objects.select_related("user__customer", "rule").get(pk=candidate["pk"])
        outcome = _send_one(notification, now)
        sent += outcome == State.SENT
        failed += outcome in (State.FAILED, State.ABANDONED)
        skipped += outcome in (State.NO_ADDRESS, State.MUTED)
    return EmailResult(sent, failed, skipped)


def _send_one(notification: Notification, now: dt.datetime) -> str:
    State = Notification.EmailState
    mine = Notification.objects.filter(pk=notification.pk, email_state=State.SENDING)
    if notification.rule is not None and notification.rule.muted:
        mine.update(email_state=State.MUTED)
        return State.MUTED
    address = _address(notification.user)
    if not address:
        mine.update(email_state=State.NO_ADDRESS)
        return State.NO_ADDRESS
    attempts = notification.email_attempts + 1
    try:
        accepted = EmailMessage(
            subject=notification.subject, body=_body(notification), from_email=settings.DEFAULT_FROM_EMAIL, to=[address]
        ).send(fail_silently=False)
        error = "" if accepted else "the mail backend accepted no message"
    except Exception as exc:  # noqa: BLE001 - any backend failure is retried later
        accepted, error = 0, f"{type(exc).__name__}: {exc}"[:500]
    if accepted:
        mine.update(email_state=State.SENT, email_attempts=attempts, emailed_at=now, email_error="")
        return State.SENT
    state = State.ABANDONED if attempts >= EMAIL_MAX_ATTEMPTS else State.FAILED
    retry = min(EMAIL_RETRY_MAX, EMAIL_RETRY_FIRST * 2 ** (attempts - 1))
    mine.update(email_state=state, email_attempts=attempts, email_error=error, email_next_at=now + retry)
    log.warning("e-mail of notification %s failed (attempt %s): %s", notification.pk, attempts, error)
    return state


# Reading.


def notifications_mark_read(*, user: User, pks: list[int] | None = None, now: dt.datetime | None = None) -> int:
    """Mark the user's notifications read (all unread ones when pks is None); returns how many changed."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if pks is not None:
        unread = unread.filter(pk__in=pks)
    return unread.update(read_at=now or timezone.now())
