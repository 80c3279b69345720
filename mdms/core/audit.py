"""The audit log of staff actions: who did what to which object, written where the action happens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User

from mdms.core.models_api import ApiToken, AuditLog


def actor_label(actor: User | AnonymousUser | ApiToken | None) -> str:
    if isinstance(actor, ApiToken):
        return f"token:{actor.name}"
    if actor is None or not actor.is_authenticated:
        return "system"
    return str(actor.get_username())


def audit_record(
    *,
    actor: User | AnonymousUser | ApiToken | None,
    action: AuditLog.Action | str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one row. `actor` is the user, the API token of a machine client, or None for the system."""
    user = actor if isinstance(actor, User) else None
    return AuditLog.objects.create(
        actor=user, actor_label=actor_label(actor), action=action, target=target, detail=detail or {}
    )
