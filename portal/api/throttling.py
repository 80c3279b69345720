"""Rate limits per caller, counted in the default cache (Redis), so every web process shares them.

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] at request time (DRF reads them once at
import), so settings overrides take effect. Over the limit: 429 with Retry-After.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from portal.api.auth import token_of


class _DynamicRate(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        rates: Any = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
        rate = rates.get(str(self.scope))
        return None if rate is None else str(rate)


class TokenThrottle(_DynamicRate):
    """Machine clients: one budget per token."""

    scope = "token"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = token_of(request)
        # The key's hash, not the row id: ids are reused when a database is recreated, keys never.
        return self.cache_format % {"scope": self.scope, "ident": token.key_hash[:24]} if token else None


class PersonThrottle(_DynamicRate):
    """People with a session: one budget per user."""

    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if token_of(request) is not None or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonThrottle(_DynamicRate):
    """Unauthenticated callers (wrong or missing credentials), per client address."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
