"""Writes and checks of API tokens: issue (the key is returned once), revoke, authenticate."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mdms.core.audit import audit_record
from mdms.core.models_api import ApiToken, AuditLog

# Keys look like "mdms_<43 url-safe chars>"; the prefix makes a leaked key easy to recognise in logs.
KEY_PREFIX = "mdms_"
# last_used_at is written at most this often per token, so reads do not each cost a write.
LAST_USED_RESOLUTION_S = 60


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown once; only its hash is stored


@transaction.atomic
def api_token_issue(*, name: str, scopes: Iterable[str], created_by: User | None = None) -> IssuedToken:
    wanted = sorted(set(scopes))
    unknown = [scope for scope in wanted if scope not in ApiToken.Scope.values]
    if not name.strip():
        raise ValidationError({"name": "Name the client that will use the token."})
    if not wanted or unknown:
        raise ValidationError({"scopes": f"Give one or more of {', '.join(ApiToken.Scope.values)}."})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name.strip(),
        prefix=key[: len(KEY_PREFIX) + 6],
        key_hash=key_hash(key),
        scopes=wanted,
        created_by=created_by,
    )
    audit_record(
        actor=created_by, action=AuditLog.Action.TOKEN_ISSUE, target=f"token:{token.pk}", detail={"scopes": wanted}
    )
    return IssuedToken(token=token, key=key)


def api_token_revoke(*, token: ApiToken, revoked_by: User | None = None) -> bool:
    """Revoke a token; False when it was already revoked (a race-safe swap)."""
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if changed:
        token.refresh_from_db()
        audit_record(actor=revoked_by, action=AuditLog.Action.TOKEN_REVOKE, target=f"token:{token.pk}")
    return bool(changed)


def api_token_authenticate(key: str) -> ApiToken | None:
    """The active token with this key, or None. Marks it used (at most once a minute)."""
    if not key.startswith(KEY_PREFIX):
        return None
    token = ApiToken.objects.filter(key_hash=key_hash(key), revoked_at__isnull=True).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_S:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
