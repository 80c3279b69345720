"""The ingest consumer inside a Celery worker: `celery -A mdms worker --ingest`.

A StartStopStep on the worker blueprint runs an IngestWorker in a thread next to the pool; the
worker's warm shutdown (SIGTERM) stops it, which flushes, acknowledges and disconnects.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, bootsteps
from click import Option

log = logging.getLogger(__name__)

INGEST_OPTION = Option(["--ingest"], is_flag=True, default=False, help="Also run the MQTT ingest consumer.")


class IngestStep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent: Any, ingest: bool = False, **options: Any) -> None:
        super().__init__(parent, **options)
        self.enabled = bool(ingest)
        self.consumer: Any = None
        self.thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        from ingest.worker import IngestWorker  # needs Django set up, which the worker has done by now

        self.consumer = IngestWorker()
        self.thread = threading.Thread(target=self.consumer.run, name="mdms-ingest", daemon=True)
        self.thread.start()
        log.info("ingest consumer %s started", self.consumer.client_id)

    def stop(self, parent: Any) -> None:
        if self.consumer is not None and self.thread is not None:
            self.consumer.stop()
            self.thread.join(timeout=30)
            log.info("ingest consumer %s stopped", self.consumer.client_id)

    shutdown = stop


def register(app: Celery) -> None:
    """Add the --ingest option and the step to a Celery app (called from mdms/celery.py)."""
    app.user_options["worker"].add(INGEST_OPTION)
    app.steps["worker"].add(IngestStep)
