"""Helpers for tests that run the MQTT ingest against the real broker (ingest's and other apps').

A worker run in a test holds a persistent session; drop_session ends it afterwards, so that the
broker does not keep queueing later tests' messages (or, in a shared group, a share of them) for a
worker that is gone.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ingest.worker import IngestWorker
from mdms.core.mqtt.client import connect, ingest_credentials, new_client


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def drop_session(client_id: str) -> None:
    """End a worker's persistent broker session, so that it leaves the shared subscription."""
    username, password = ingest_credentials()
    client = new_client(client_id=client_id, username=username, password=password, clean_start=True)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    connect(client)
    client.loop_start()
    connected.wait(5)
    client.disconnect()
    client.loop_stop()


class RunningWorker:
    """An IngestWorker consuming in a thread of the test process; subscribed once constructed."""

    def __init__(self, client_id_prefix: str, *, client_id: str | None = None, **options: Any) -> None:
        """client_id resumes a given session; by default the worker gets a new one (prefix + random)."""
        self.worker = IngestWorker(
            client_id=client_id or f"{client_id_prefix}-{uuid.uuid4().hex[:8]}", flush_interval_s=0.05, **options
        )
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()
        wait_for(self.worker.subscribed.is_set, 10, "the worker's subscription")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the worker (it flushes, acknowledges and leaves the group) and check that it ended."""
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive()
