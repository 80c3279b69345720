"""The MQTT topic scheme of the design's contract. Nothing else spells a topic.

| topic                      | direction     | payload                                    |
|----------------------------|---------------|--------------------------------------------|
| meters/{serial}/readings   | meter -> MDMS | one reading object, or a JSON list of them |
| meters/{serial}/events     | meter -> MDMS | {"ts", "type", "detail"?}                  |
| meters/{serial}/commands   | MDMS -> meter | {"id", "type": "read"}                     |
| meters/{serial}/replies    | meter -> MDMS | {"id", "ts", "register_import_kwh", ...}   |
"""

from __future__ import annotations

from enum import StrEnum

PREFIX = "meters"
# The group name the documentation and docker-compose use when ingest workers split the stream
# (settings.INGEST_SHARE_GROUP; empty by default: each worker subscribes on its own).
SHARE_GROUP = "ingest"


class Kind(StrEnum):
    READINGS = "readings"
    EVENTS = "events"
    COMMANDS = "commands"
    REPLIES = "replies"


# What the ingest worker subscribes to (meter -> MDMS).
INBOUND = (Kind.READINGS, Kind.EVENTS, Kind.REPLIES)


def topic(serial: str, kind: Kind) -> str:
    return f"{PREFIX}/{serial}/{kind.value}"


def wildcard(kind: Kind) -> str:
    return f"{PREFIX}/+/{kind.value}"


def shared(kind: Kind, group: str = SHARE_GROUP) -> str:
    return f"$share/{group}/{wildcard(kind)}"


def inbound(kind: Kind, group: str) -> str:
    """The ingest worker's filter for one inbound kind: shared within `group`, or its own when empty."""
    return shared(kind, group) if group else wildcard(kind)


# A dict lookup: Kind(value) costs a microsecond, and the ingest parses every message's topic.
_KINDS = {kind.value: kind for kind in Kind}


def parse(topic_name: str) -> tuple[str, Kind] | None:
    """(serial, kind) of a meter topic, or None for anything else."""
    parts = topic_name.split("/")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1]:
        return None
    kind = _KINDS.get(parts[2])
    return None if kind is None else (parts[1], kind)
