"""The MDMS Django project: settings, URLs, the Celery app, and the core domain (mdms.core)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
