"""Reads about ingest's health: the counters shared by every worker and the dead letters.

The operator's ingest page (portal) and the API's /api/v1/ingest/stats/ both read through here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingest import counters
from mdms.core.timeseries import readings

# Dead letters counted by reason over this window; the newest RECENT_DEAD_LETTERS are listed.
DEAD_LETTER_WINDOW = dt.timedelta(hours=24)
RECENT_DEAD_LETTERS = 20
# Text payloads are cut to what a table cell (or a JSON row a person reads) holds.
PAYLOAD_PREVIEW_CHARS = 200


def ingest_health(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """The shared counters, dead letters by reason over the last day, and the newest dead letters."""
    now = now or dt.datetime.now(tz=dt.UTC)
    return {
        "counters": counters.snapshot(),
        "dead_letters_by_reason": readings.dead_letters_by_reason(now - DEAD_LETTER_WINDOW),
        "recent_dead_letters": readings.recent_dead_letters(RECENT_DEAD_LETTERS),
    }


def dead_letter_preview(letter: dict[str, Any]) -> dict[str, Any]:
    """A dead letter as a row: binary payloads by size only, text cut to PAYLOAD_PREVIEW_CHARS."""
    payload = letter["payload"]
    return {
        "received_at": letter["received_at"],
        "topic": letter["topic"],
        "reason_code": letter["reason_code"],
        "reason": letter["reason"],
        "payload": payload[:PAYLOAD_PREVIEW_CHARS] if isinstance(payload, str) else f"<{letter['payload_size']} bytes>",
    }
