"""The Celery app. The beat schedule lives in mdms.schedule, one place for every periodic job."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdms.settings")

app = Celery("mdms")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# `celery -A mdms worker --ingest` also runs the MQTT ingest consumer (ingest/bootsteps.py).
from ingest.bootsteps import register as register_ingest  # noqa: E402

register_ingest(app)
