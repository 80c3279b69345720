"""Messages from the MDMS to meters, on their command topics (`meters/{serial}/commands`, QoS 1).

Every command a meter is sent goes out through here: the topic scheme stays in `topics`, the
connection choices in `client`. The sender uses the ingest account, which may publish to every
meter's command topic and nothing else a meter owns. `meter_command_send` sends one message on a
connection of its own; `CommandPublisher` keeps one connection open for a dispatcher that sends many.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt

from mdms.core.mqtt import client as mqtt_client
from mdms.core.mqtt import topics

# How long to wait for the broker's PUBACK of a command before giving up (the caller retries).
PUBLISH_TIMEOUT_S = 10.0


class CommandPublisher:
    """Publishes commands on one open connection and waits for each PUBACK."""

    def __init__(self, client: mqtt.Client) -> None:
        self._client = client

    def send(self, *, serial: str, payload: Mapping[str, Any]) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK; BrokerError when it does not come."""
        info = self._client.publish(topics.topic(serial, topics.Kind.COMMANDS), json.dumps(dict(payload)), qos=1)
        try:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:  # paho: the connection dropped, or the queue is full
            raise mqtt_client.BrokerError(f"command to {serial} not sent: {exc}") from exc
        if not info.is_published():
            raise mqtt_client.BrokerError(f"the broker did not acknowledge the command to {serial} in time")


@contextmanager
def command_publisher() -> Iterator[CommandPublisher]:
    """A publisher on a connection of its own, closed on the way out (BrokerError if it cannot open)."""
    username, password = mqtt_client.ingest_credentials()
    client = mqtt_client.new_client(client_id=f"mdms-cmd-{uuid.uuid4().hex[:8]}", username=username, password=password)
    with mqtt_client.session(client):
        yield CommandPublisher(client)


def meter_command_send(*, serial: str, payload: Mapping[str, Any]) -> None:
    """Publish one command to the meter's command topic at QoS 1 and wait for the broker's PUBACK.

    Raises BrokerError when the broker cannot be reached, refuses the sender, or does not
    acknowledge the message in time; the command is then not known to have left.
    """
    with command_publisher() as publisher:
        publisher.send(serial=serial, payload=payload)
