"""Ingest health for operators, as JSON: counters shared by all workers, and recent dead letters."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse

from ingest import counters
from mdms.core.roles import Role, user_roles
from mdms.core.timeseries import readings

RECENT_DEAD_LETTERS = 20


@login_required
def stats(request: HttpRequest) -> JsonResponse:
    if not (request.user.is_staff or user_roles(request.user) & {Role.OPERATOR, Role.BILLING}):
        raise PermissionDenied
    since = dt.datetime.now(tz=dt.UTC) - dt.timedelta(hours=24)
    recent = [
        {
            "received_at": letter["received_at"].isoformat(),
            "topic": letter["topic"],
            "reason_code": letter["reason_code"],
            "reason": letter["reason"],
            # Binary payloads are shown by size only; text is cut to what a table cell holds.
            "payload": letter["payload"][:200]
            if isinstance(letter["payload"], str)
            else f"<{letter['payload_size']} bytes>",
        }
        for letter in readings.recent_dead_letters(RECENT_DEAD_LETTERS)
    ]
    return JsonResponse(
        {
            "counters": counters.snapshot(),
            "dead_letters_last_24h_by_reason": readings.dead_letters_by_reason(since),
            "recent_dead_letters": recent,
        }
    )
