"""Writes of the command framework: requests, sends (with retries), replies, expiry, cancellation.

Every change of status is a compare-and-swap on the status it leaves (and, for a resend, on the
attempt count), taken before the side effect: two dispatchers, or a dispatcher and the quick send
after a request, never send the same attempt twice. Relay state on the meter changes only when a
disconnect or reconnect completes.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from commands import kinds
from commands.kinds import Kind, ReplyStatus
from commands.models import MeterCommand, MeterCommandEvent
from commands.throttle import Throttle
from mdms.core.audit import audit_record
from mdms.core.models import ApiToken, AuditLog, Meter
from mdms.core.mqtt.client import BrokerError
from mdms.core.mqtt.commands import meter_command_send
from mdms.core.timeseries import readings as stored

log = logging.getLogger(__name__)

Status = MeterCommand.Status

# A not-before further ahead than this is a typing error, not a plan.
MAX_SCHEDULE_AHEAD = dt.timedelta(days=31)
# Queued commands looked at per dispatcher pass (most urgent first); the rest wait for the next pass.
DISPATCH_BATCH = 500
# Commands claimed in one transaction and published together (as many as the throttle grants).
SEND_BATCH = 100


class Sender(Protocol):
    def send_many(self, messages: Sequence[tuple[str, Mapping[str, Any]]]) -> list[BrokerError | None]: ...


class _OneShotSender:
    """Sends each command on a connection of its own (the quick send after a request)."""

    def send_many(self, messages: Sequence[tuple[str, Mapping[str, Any]]]) -> list[BrokerError | None]:
        outcomes: list[BrokerError | None] = []
        for serial, payload in messages:
            try:
                meter_command_send(serial=serial, payload=payload)
                outcomes.append(None)
            except BrokerError as exc:
                outcomes.append(exc)
        return outcomes


class IdempotencyConflict(ValidationError):
    """The idempotency key was already used by this client for a different command."""


def _event(command: MeterCommand, status: str, at: dt.datetime, detail: str = "") -> None:
    MeterCommandEvent.objects.create(command=command, status=status, at=at, attempt=command.attempts, detail=detail)


def _client_key(user: User | None, token: ApiToken | None) -> str:
    if token is not None:
        return f"token:{token.pk}"
    return f"user:{user.pk}" if user is not None else ""


def command_request(
    *,
    meter: Meter,
    kind: Kind | str,
    priority: int = 5,
    not_before: dt.datetime | None = None,
    deadline: dt.datetime | None = None,
    reason: str = "",
    requested_by: User | None = None,
    token: ApiToken | None = None,
    idempotency_key: str = "",
    send_now: bool = True,
    audit: bool = True,
) -> tuple[MeterCommand, bool]:
    """Queue a command; (command, created). The same client's same idempotency key gives back the
    first command (created False), or IdempotencyConflict if it asked for something else.

    With send_now, the command goes out as soon as the transaction commits, when its meter has
    nothing in flight and the throttle has room; otherwise the dispatcher sends it.
    """
    now = timezone.now()
    try:
        kind = Kind(kind)
    except ValueError:
        raise ValidationError({"kind": f"must be one of {', '.join(k.value for k in Kind)}"}) from None
    errors: dict[str, str] = {}
    if not 1 <= priority <= 9:
        errors["priority"] = "must be from 1 (lowest) to 9 (most urgent)"
    not_before = not_before or now
    if not_before > now + MAX_SCHEDULE_AHEAD:
        errors["not_before"] = f"may be at most {MAX_SCHEDULE_AHEAD.days} days ahead"
    deadline = deadline or max(now, not_before) + dt.timedelta(seconds=settings.COMMANDS_DEADLINE_S)
    if deadline <= max(now, not_before):
        errors["deadline"] = "must be after now and after not_before"
    if kind in kinds.RELAY_KINDS and not reason.strip():
        errors["reason"] = f"a {kind.value} needs a reason (it is audited)"
    if meter.status not in Meter.ACCEPTING_STATUSES:
        errors["meter"] = f"meter {meter.serial} is {meter.status} and cannot be reached"
    if len(idempotency_key) > 100:
        errors["idempotency_key"] = "at most 100 characters"
    if errors:
        raise ValidationError(errors)
    client_key = _client_key(requested_by, token)
    if idempotency_key:
        existing = _by_key(client_key, idempotency_key)
        if existing is not None:
            return _same_request(existing, meter, kind), False
    try:
        with transaction.atomic():
            command = MeterCommand.objects.create(
                command_id=uuid.uuid4().hex,
                meter=meter,
                kind=kind.value,
                priority=priority,
                not_before=not_before,
                deadline=deadline,
                reason=reason.strip()[:300],
                requested_by=requested_by,
                requested_by_token=token,
                client_key=client_key,
                idempotency_key=idempotency_key,
                created_at=now,
            )
    except IntegrityError:  # the same key, asked twice at once: the other request won
        existing = _by_key(client_key, idempotency_key)
        if existing is None:
            raise
        return _same_request(existing, meter, kind), False
    _event(command, Status.QUEUED, now, f"priority {priority}")
    if audit:
        audit_record(
            actor=token or requested_by,
            action=AuditLog.Action.METER_COMMAND,
            target=f"meter:{meter.serial}",
            detail={"command": command.command_id, "kind": kind.value, "reason": command.reason},
        )
    if send_now and not_before <= now:
        transaction.on_commit(lambda: _send_soon(command.pk))
    return command, True


def _by_key(client_key: str, idempotency_key: str) -> MeterCommand | None:
    return MeterCommand.objects.filter(client_key=client_key, idempotency_key=idempotency_key).first()


def _same_request(existing: MeterCommand, meter: Meter, kind: Kind) -> MeterCommand:
    if existing.meter_id != meter.pk or existing.kind != kind.value:
        raise IdempotencyConflict(
            {"idempotency_key": f"already used for command {existing.command_id} ({existing.kind} to another meter)"}
        )
    return existing


def _send_soon(command_pk: int) -> None:
    """The quick path after a request: send now if the meter is free and the throttle has room."""
    try:
        command = MeterCommand.objects.select_related("meter").get(pk=command_pk)
        if _meter_busy(command.meter_id, but=command.pk):
            return
        if Throttle().take() > 0:
            return  # the dispatcher sends it when the fleet's rate allows
        command_send(command=command, sender=_OneShotSender())
    except Exception:  # the dispatcher will send it; a request never fails for a send
        log.exception("quick send of command %s failed; the dispatcher will retry", command_pk)


def _meter_busy(meter_pk: int, *, but: int | None = None) -> bool:
    busy = MeterCommand.objects.filter(meter_id=meter_pk, status__in=MeterCommand.IN_FLIGHT)
    if but is not None:
        busy = busy.exclude(pk=but)
    return busy.exists()


def command_send(*, command: MeterCommand, sender: Sender, now: dt.datetime | None = None) -> bool:
    """Send one queued command, or a sent one again; see commands_send."""
    return commands_send(commands=[command], sender=sender, now=now) == 1


def commands_send(*, commands: Sequence[MeterCommand], sender: Sender, now: dt.datetime | None = None) -> int:
    """Send queued commands, or sent ones again, in one go; how many left.

    Each attempt is claimed first, in one transaction for the lot: a row lock (skipping rows another
    dispatcher holds) and the attempt count it was read with (a compare-and-swap). Only then are the
    messages published, all at once, and their PUBACKs awaited; one the broker did not take gets its
    attempt back, so the next pass tries again.
    """
    now = now or timezone.now()
    read_with = {command.pk: command.attempts for command in commands}
    if not read_with:
        return 0
    with transaction.atomic():
        locked = (
            MeterCommand.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=list(read_with), status__in=[Status.QUEUED, Status.SENT])
            .select_related("meter")
            .order_by("pk")
        )
        claimed = [command for command in locked if command.attempts == read_with[command.pk]]
        before = {command.pk: command.status for command in claimed}
        # One UPDATE per attempt number (their retry waits differ), not a CASE per row.
        by_attempt: dict[int, list[MeterCommand]] = defaultdict(list)
        for command in claimed:
            command.attempts += 1
            command.status, command.sent_at = Status.SENT, now
            by_attempt[command.attempts].append(command)
        for attempt, group in by_attempt.items():
            delay = kinds.retry_delay_s(
                attempt, base_s=settings.COMMANDS_RETRY_BASE_S, cap_s=settings.COMMANDS_RETRY_MAX_S
            )
            retry_at = now + dt.timedelta(seconds=delay)
            for command in group:
                command.retry_at = retry_at
            MeterCommand.objects.filter(pk__in=[c.pk for c in group]).update(
                status=Status.SENT, attempts=attempt, sent_at=now, retry_at=retry_at
            )
    if not claimed:
        return 0
    outcomes = sender.send_many(
        [(command.meter.serial, kinds.payload(Kind(command.kind), command.command_id, now=now)) for command in claimed]
    )
    sent: list[MeterCommand] = []
    for command, error in zip(claimed, outcomes, strict=True):
        if error is None:
            sent.append(command)
            continue
        MeterCommand.objects.filter(pk=command.pk, attempts=command.attempts).update(
            status=before[command.pk], attempts=command.attempts - 1, retry_at=now
        )
        log.warning("command %s to %s not sent: %s", command.command_id, command.meter.serial, error)
    MeterCommandEvent.objects.bulk_create(
        MeterCommandEvent(
            command=command,
            status=Status.SENT,
            at=now,
            attempt=command.attempts,
            detail="sent" if command.attempts == 1 else f"sent again (attempt {command.attempts})",
        )
        for command in sent
    )
    return len(sent)


@transaction.atomic  # the status and its event together: a reader never sees one without the other
def _finish(command: MeterCommand, status: str, now: dt.datetime, *, result: dict[str, Any], failure: str) -> bool:
    done = MeterCommand.objects.filter(pk=command.pk, status__in=[Status.QUEUED, *MeterCommand.IN_FLIGHT]).update(
        status=status, finished_at=now, result=result, failure=failure[:300], retry_at=None
    )
    if not done:
        return False
    command.status, command.result, command.failure = status, result, failure
    _event(command, status, now, failure)
    return True


def replies_apply(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Move the commands in flight by the replies their meters sent: one MongoDB query for all of them,
    one transaction for every change (the rows locked, so two dispatchers never apply one reply twice)."""
    now = now or timezone.now()
    counts = {"acknowledged": 0, "completed": 0, "failed": 0}
    flying = {
        (c.meter_id, c.command_id): c
        for c in MeterCommand.objects.filter(status__in=MeterCommand.IN_FLIGHT).only(
            "pk", "meter_id", "command_id", "kind"
        )
    }
    if not flying:
        return counts
    acknowledged: set[int] = set()
    outcomes: dict[int, kinds.Outcome] = {}
    for reply in stored.replies_for(list(flying)):
        command = flying[(reply["meter"], reply["id"])]
        outcome = kinds.outcome(Kind(command.kind), reply)
        if outcome.status is ReplyStatus.ACKNOWLEDGED:
            acknowledged.add(command.pk)
        else:
            outcomes.setdefault(command.pk, outcome)  # the first outcome counts; a second is a duplicate
    if not acknowledged and not outcomes:
        return counts
    with transaction.atomic():
        locked = {
            c.pk: c
            for c in MeterCommand.objects.select_for_update(skip_locked=True).filter(
                pk__in=acknowledged | set(outcomes), status__in=MeterCommand.IN_FLIGHT
            )
        }
        events: list[MeterCommandEvent] = []
        newly_acknowledged = [pk for pk in acknowledged if pk in locked and locked[pk].status == Status.SENT]
        if newly_acknowledged:
            MeterCommand.objects.filter(pk__in=newly_acknowledged).update(
                status=Status.ACKNOWLEDGED, acknowledged_at=now
            )
            events += [
                MeterCommandEvent(command_id=pk, status=Status.ACKNOWLEDGED, at=now, attempt=locked[pk].attempts)
                for pk in newly_acknowledged
            ]
            counts["acknowledged"] = len(newly_acknowledged)
        for pk, outcome in outcomes.items():
            if pk not in locked:
                continue
            held = locked[pk]
            status = Status.COMPLETED if outcome.status is ReplyStatus.COMPLETED else Status.FAILED
            MeterCommand.objects.filter(pk=pk).update(
                status=status, finished_at=now, result=outcome.result, failure=outcome.reason[:300], retry_at=None
            )
            detail = outcome.reason or ", ".join(f"{k} {v}" for k, v in outcome.result.items() if k != "ts")
            events.append(
                MeterCommandEvent(command_id=pk, status=status, at=now, attempt=command.attempts, detail=detail[:300])
            )
            counts["completed" if status == Status.COMPLETED else "failed"] += 1
            if status == Status.COMPLETED and held.kind in kinds.RELAY_KINDS and "relay" in outcome.result:
                # The relay is master data, changed only here: by a completed disconnect or reconnect.
                Meter.objects.filter(pk=held.meter_id).update(relay_state=outcome.result["relay"])
        MeterCommandEvent.objects.bulk_create(events)
    return counts


def commands_expire(*, now: dt.datetime | None = None) -> int:
    """End every unfinished command past its deadline: no answer in time (after its retries)."""
    now = now or timezone.now()
    expired = 0
    for command in MeterCommand.objects.filter(status__in=[Status.QUEUED, *MeterCommand.IN_FLIGHT], deadline__lte=now):
        why = {
            Status.QUEUED: "not sent before its deadline (the meter was busy or the fleet's rate was full)",
            Status.SENT: f"no answer from the meter after {command.attempts} attempt(s)",
            Status.ACKNOWLEDGED: "acknowledged, but not completed before its deadline",
        }[Status(command.status)]
        expired += _finish(command, Status.EXPIRED, now, result={}, failure=why)
    return expired


def command_cancel(*, command: MeterCommand, user: User | None = None, token: ApiToken | None = None) -> bool:
    """Cancel a command that has not left yet. False when it already has (a sent command cannot be recalled)."""
    now = timezone.now()
    with transaction.atomic():
        if not MeterCommand.objects.filter(pk=command.pk, status=Status.QUEUED).update(
            status=Status.CANCELLED, finished_at=now
        ):
            return False
        command.status = Status.CANCELLED
        _event(command, Status.CANCELLED, now, f"by {token or user or 'the system'}")
    return True


@dataclass
class PassReport:
    """What one dispatcher pass did, and how long the caller may sleep before the next."""

    sent: int = 0
    resent: int = 0
    expired: int = 0
    replies: dict[str, int] = field(default_factory=dict)
    wait_s: float = 0.5


def dispatch_once(
    *,
    sender: Sender,
    throttle: Throttle,
    now: Callable[[], dt.datetime] = timezone.now,
    budget_s: float = 1.0,
) -> PassReport:
    """One pass of the dispatcher: replies in, deadlines out, retries, then queued commands in order.

    Within the fleet's rate, one command per meter at a time, most urgent first, then oldest. Spends
    at most about budget_s sending (the throttle's pacing included), so that replies are read often.
    """
    close_old_connections()
    report = PassReport()
    report.replies = replies_apply(now=now())
    report.expired = commands_expire(now=now())
    started = time.monotonic()

    def paced(commands: Sequence[MeterCommand]) -> tuple[int, bool]:
        """Send within the fleet's rate and the pass's budget: (sent, whether all were handed on)."""
        sent = done = 0
        while done < len(commands):
            granted, wait = throttle.take_many(min(len(commands) - done, SEND_BATCH))
            if not granted:
                if time.monotonic() + wait - started > budget_s:
                    report.wait_s = min(report.wait_s, wait)
                    return sent, False
                time.sleep(wait)
                continue
            sent += commands_send(commands=commands[done : done + granted], sender=sender, now=now())
            done += granted
        return sent, True

    moment = now()
    due_again = MeterCommand.objects.filter(status=Status.SENT, retry_at__lte=moment, deadline__gt=moment)
    resend = list(due_again.select_related("meter").order_by("-priority", "retry_at")[:DISPATCH_BATCH])
    report.resent, finished = paced(resend)
    if not finished:
        return report
    busy = set(
        MeterCommand.objects.filter(status__in=MeterCommand.IN_FLIGHT).values_list("meter_id", flat=True).distinct()
    )
    queued = (
        MeterCommand.objects.filter(status=Status.QUEUED, not_before__lte=moment, deadline__gt=moment)
        .select_related("meter")
        .order_by("-priority", "created_at", "pk")
    )
    todo: list[MeterCommand] = []
    for command in queued[:DISPATCH_BATCH]:
        if command.meter_id in busy:
            continue  # one at a time per meter: its next command waits for this one's end
        busy.add(command.meter_id)
        todo.append(command)
    report.sent, _ = paced(todo)
    return report
