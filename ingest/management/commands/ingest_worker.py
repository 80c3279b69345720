"""Run one ingest worker in the foreground: `manage.py ingest_worker [--client-id ID]`.

Production runs the same consumer inside Celery (`celery -A mdms worker --ingest`); this command
is the plain process for development, tests and debugging. SIGTERM or SIGINT flushes the batch in
hand, acknowledges it and disconnects.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ingest.worker import FLUSH_INTERVAL_S, IngestWorker, default_client_id


class Command(BaseCommand):
    help = "Consume meter readings, events and replies from MQTT into MongoDB."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--client-id", default=None, help="MQTT client id (default: INGEST_CLIENT_ID or ingest-HOSTNAME)"
        )
        parser.add_argument("--flush-interval", type=float, default=FLUSH_INTERVAL_S, help="seconds a batch may wait")

    def handle(self, *args: Any, **options: Any) -> None:
        worker = IngestWorker(
            client_id=options["client_id"] or default_client_id(), flush_interval_s=options["flush_interval"]
        )

        def shutdown(signum: int, frame: FrameType | None) -> None:
            worker.stop()

        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
        self.stdout.write(f"ingest worker {worker.client_id} starting")
        worker.run()
        self.stdout.write(f"ingest worker {worker.client_id} stopped")
