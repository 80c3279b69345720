"""`celery -A mdms worker --ingest` is the ingest worker."""

from __future__ import annotations

import subprocess
import sys

from ingest.bootsteps import IngestStep
from mdms.celery import app
from mdms.config import BASE_DIR


def test_worker_command_offers_the_ingest_option() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "mdms", "worker", "--help"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--ingest" in help_text


def test_ingest_step_is_registered_and_off_unless_asked() -> None:
    assert IngestStep in app.steps["worker"]
    assert IngestStep(parent=None).enabled is False
    assert IngestStep(parent=None, ingest=True).enabled is True
