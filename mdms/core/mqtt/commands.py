"""Messages from the MDMS to meters, on their command topics (`meters/{serial}/commands`, QoS 1).

Every command a meter is sent goes out through here: the topic scheme stays in `topics`, the
connection choices in `client`. The sender uses the ingest account, which may publish to every
meter's command topic and nothing else a meter owns. `meter_command_send` sends one message on a
connection of its own; `CommandPublisher` keeps one connection open for a dispatcher that sends many.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
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
        error = self.send_many([(serial, payload)])[0]
        if error is not None:
            raise error

    def send_many(self, messages: Sequence[tuple[str, Mapping[str, Any]]]) -> list[mqtt_client.BrokerError | None]:
        """Publish every message at QoS 1, then await their PUBACKs (in flight together, not one by
        one); per message, None when the broker took it, else why not."""
        infos: list[mqtt.MQTTMessageInfo | mqtt_client.BrokerError] = []
        for serial, payload in messages:
            try:
                topic = topics.topic(serial, topics.Kind.COMMANDS)
                infos.append(self._client.publish(topic, json.dumps(dict(payload)), qos=1))
            except (RuntimeError, ValueError) as exc:  # paho: not connected, or the queue is full
                infos.append(mqtt_client.BrokerError(f"command to {serial} not sent: {exc}"))
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        outcomes: list[mqtt_client.BrokerError | None] = []
        for (serial, _), info in zip(messages, infos, strict=True):
            if isinstance(info, mqtt_client.BrokerError):
                outcomes.append(info)
                continue
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:  # the connection dropped meanwhile
                outcomes.append(mqtt_client.BrokerError(f"command to {serial} not sent: {exc}"))
                continue
            published = info.is_published()
            outcomes.append(None if published else mqtt_client.BrokerError(f"no PUBACK for the command to {serial}"))
        return outcomes


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
