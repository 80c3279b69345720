"""The HTTP side of a data hub pull: one GET of a load curve, retried as the hub asks.

The contract (docs/datahub.md): `GET {base_url}{path}?usage_point_id=…&start=YYYY-MM-DD&end=YYYY-MM-DD`
with `Authorization: Bearer <token>` and `Accept: application/json`; end is exclusive, as at Enedis.

Retried: 429, 408, 5xx, and network errors (refused, reset, timeout), with exponential backoff and
jitter, never sooner than a Retry-After (seconds or an HTTP date) says, at most max_attempts
requests. Not retried: other 4xx (a bad token stays bad), redirects (the bearer token is not sent on
to wherever a redirect points), and answers above MAX_BODY_BYTES. Every request, retries included,
first waits for the per-hub rate limiter.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings

from ingest.datahub.ratelimit import RateLimiter

# A week of 10-minute readings is about 100 kB of JSON; anything near this is not a load curve.
MAX_BODY_BYTES = 20 * 1024 * 1024
# How much of an error answer's body the pull record keeps (hubs explain errors in JSON bodies).
ERROR_BODY_CHARS = 300
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = "mdms-datahub/1"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float  # the first backoff; doubled at each failure
    max_wait_s: float  # no wait is longer; a Retry-After beyond it ends the pull in error
    timeout_s: float  # per request (connect, then each read)

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            max_attempts=settings.DATAHUB_MAX_ATTEMPTS,
            base_s=settings.DATAHUB_RETRY_BASE_S,
            max_wait_s=settings.DATAHUB_RETRY_MAX_S,
            timeout_s=settings.DATAHUB_TIMEOUT_S,
        )

    def backoff_s(self, failures: int) -> float:
        """Wait after the n-th failure: half of base * 2^(n-1) for sure, the other half at random
        ("equal jitter"), so that pulls failing together do not retry together."""
        ceiling = min(self.max_wait_s, self.base_s * 2 ** min(failures - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class LoadCurveRequest:
    base_url: str
    path: str
    token: str
    usage_point_id: str
    start: dt.date
    end: dt.date  # exclusive

    @property
    def url(self) -> str:
        query = urlencode(
            {"usage_point_id": self.usage_point_id, "start": self.start.isoformat(), "end": self.end.isoformat()}
        )
        return f"{self.base_url.rstrip('/')}/{self.path.lstrip('/')}?{query}"

    @property
    def host(self) -> str:
        """What the rate limit is counted on: the hub's host and port."""
        return urlsplit(self.base_url).netloc.lower()


@dataclass(frozen=True)
class Answer:
    body: bytes
    http_status: int
    attempts: int


@dataclass(frozen=True)
class Retry:
    """A failed attempt that will be retried, for the pull record (status "retrying")."""

    attempt: int
    http_status: int | None
    reason: str
    wait_s: float


class HubError(Exception):
    """The hub did not give a usable answer, after the retries that made sense."""

    def __init__(self, message: str, *, http_status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.attempts = attempts


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect becomes an HTTPError: following it would hand the bearer token to another URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect())


def retry_after_s(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """A Retry-After header in seconds: delta-seconds or an HTTP date (RFC 9110, 10.2.3); None if absent or bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(tz=dt.UTC))).total_seconds())


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read(ERROR_BODY_CHARS * 4)
    except (OSError, http.client.HTTPException):
        raw = b""
    detail = " ".join(raw.decode("utf-8", "replace").split())[:ERROR_BODY_CHARS]
    return f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")


def fetch_load_curve(
    request: LoadCurveRequest,
    *,
    policy: RetryPolicy,
    limiter: RateLimiter,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[Retry], None] | None = None,
) -> Answer:
    """The hub's 200 answer to the request, or HubError saying why not (with the last status)."""
    if urlsplit(request.base_url).scheme not in {"http", "https"}:
        raise HubError("the base URL must be http or https", http_status=None, attempts=0)
    headers = {
        "Authorization": f"Bearer {request.token}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    attempt = 0
    while True:
        attempt += 1
        limiter.wait(request.host)
        http_status: int | None = None
        retry_after: float | None = None
        try:
            get = urllib.request.Request(request.url, headers=headers, method="GET")  # noqa: S310 (scheme checked)
            with _opener.open(get, timeout=policy.timeout_s) as response:
                body = response.read(MAX_BODY_BYTES + 1)
                if len(body) > MAX_BODY_BYTES:
                    raise HubError(
                        f"the answer is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB",
                        http_status=response.status,
                        attempts=attempt,
                    )
                return Answer(body=body, http_status=response.status, attempts=attempt)
        except urllib.error.HTTPError as exc:
            http_status = exc.code
            reason = _error_text(exc)
            if 300 <= exc.code < 400:
                where = exc.headers.get("Location", "elsewhere") if exc.headers else "elsewhere"
                raise HubError(
                    f"{reason}; the hub redirects to {where[:200]}, which is not followed: set the connector's URL to it",
                    http_status=http_status,
                    attempts=attempt,
                ) from None
            if exc.code not in RETRYABLE_STATUSES:
                raise HubError(reason, http_status=http_status, attempts=attempt) from None
            retry_after = retry_after_s(exc.headers.get("Retry-After") if exc.headers else None)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # URLError wraps refused connections; TimeoutError, ConnectionResetError and
            # http.client's RemoteDisconnected/IncompleteRead come unwrapped from the read.
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            reason = f"could not reach the hub: {type(cause).__name__} {cause}".strip()[:ERROR_BODY_CHARS]
        if attempt >= policy.max_attempts:
            raise HubError(f"{reason} (gave up after {attempt} attempts)", http_status=http_status, attempts=attempt)
        if retry_after is not None and retry_after > policy.max_wait_s:
            raise HubError(
                f"{reason}; Retry-After asks for {retry_after:.0f} s, more than the {policy.max_wait_s:.0f} s "
                "a pull waits (DATAHUB_RETRY_MAX_S): the next run will try again",
                http_status=http_status,
                attempts=attempt,
            )
        wait = max(retry_after or 0.0, policy.backoff_s(attempt))
        if on_retry is not None:
            on_retry(Retry(attempt=attempt, http_status=http_status, reason=reason, wait_s=wait))
        sleep(wait)
