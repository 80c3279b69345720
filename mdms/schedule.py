"""The Celery beat schedule: every periodic job, in one place, each with when it fires in words.

Times are in settings.TIME_ZONE (CELERY_TIMEZONE), the utility's local time.
"""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}
