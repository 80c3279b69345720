"""The command dispatcher: a long-running process that sends commands to meters and follows them.

A thin loop around services.dispatch_once (which tests call directly): it keeps one MQTT
connection open for sending, reconnects when it drops, and stops cleanly on SIGTERM between
passes. Several dispatchers may run: every send is claimed by compare-and-swap first, and the
throttle is shared in Redis.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import connection

from commands.services import dispatch_once
from commands.throttle import Throttle
from mdms.core.mqtt.client import BrokerError
from mdms.core.mqtt.commands import command_publisher

log = logging.getLogger(__name__)

# Between passes when there is nothing to do: replies are read this often.
IDLE_S = 0.25
# After the broker could not be reached.
RECONNECT_S = 5.0


class Dispatcher:
    def __init__(self, *, rate_per_s: float | None = None) -> None:
        self.throttle = Throttle(rate_per_s=rate_per_s)
        self.stopping = threading.Event()
        self.passes = 0

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        try:
            self._loop()
        finally:
            connection.close()  # this thread's database connection, whether a process or a test thread

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                with command_publisher() as publisher:
                    while not self.stopping.is_set():
                        report = dispatch_once(sender=publisher, throttle=self.throttle)
                        self.passes += 1
                        if not (report.sent or report.resent):
                            self.stopping.wait(min(IDLE_S, report.wait_s))
            except BrokerError as exc:
                log.warning("command dispatcher: %s; trying again in %.0f s", exc, RECONNECT_S)
                self.stopping.wait(RECONNECT_S)
            except Exception:  # a bad pass must not end the process: log it and go on
                log.exception("command dispatcher pass failed")
                time.sleep(1.0)
