"""Green Button Connect's nightly housekeeping (idempotent: a second run deletes nothing more)."""

from __future__ import annotations

from celery import shared_task
from oauth2_provider.models import clear_expired


@shared_task(name="greenbutton.clear_expired_tokens", ignore_result=True)
def clear_expired_tokens() -> None:
    """Delete expired access tokens, spent or expired refresh tokens and old authorization codes.

    Expired tokens already fail every request; this only keeps the token tables small."""
    clear_expired()
