"""Celery finds an app's tasks in <app>.tasks; the ingest's live in their packages and are named here."""

from __future__ import annotations

from ingest.datahub.tasks import datahub_pull_yesterday

__all__ = ["datahub_pull_yesterday"]
