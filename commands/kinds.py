"""What each command kind sends to a meter, and what the meter's replies mean (no I/O, no clock).

The MQTT contract (docs/commands.md): the MDMS publishes `{"id", "type", ...}` to
`meters/{serial}/commands`; the meter answers on `meters/{serial}/replies` with `{"id", "ts",
"status", ...}`, where status is "acknowledged" (taken, working on it), "completed" (done, with the
kind's result) or "failed" (with a "reason"). A read reply without a status is a completed read (the
contract's first version, which meters in the field still speak).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mdms.core.models import Meter

Relay = Meter.Relay


class Kind(enum.StrEnum):
    READ = "read"  # registers now (move-in, move-out, disputes, missing reads before billing)
    DISCONNECT = "disconnect"  # open the supply relay (move-out, non-payment, safety)
    RECONNECT = "reconnect"  # close it again (or arm it, for the customer to close at the meter)
    TIME_SYNC = "time_sync"  # set the meter's clock
    DEMAND_RESET = "demand_reset"  # end the billing period's maximum demand


# Kinds that change who has power: they need a reason and are audited.
RELAY_KINDS = frozenset({Kind.DISCONNECT, Kind.RECONNECT})


class ReplyStatus(enum.StrEnum):
    ACKNOWLEDGED = "acknowledged"
    COMPLETED = "completed"
    FAILED = "failed"


def payload(kind: Kind, command_id: str, *, now: dt.datetime) -> dict[str, Any]:
    """The message for the meter. time_sync carries the MDMS's clock (UTC) at the moment of sending."""
    message: dict[str, Any] = {"id": command_id, "type": kind.value}
    if kind is Kind.TIME_SYNC:
        message["time"] = now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return message


@dataclass(frozen=True)
class Outcome:
    """What a reply does to a command: its new status, the result to keep, or the meter's reason."""

    status: ReplyStatus
    result: dict[str, Any]
    reason: str = ""


def outcome(kind: Kind, reply: Mapping[str, Any]) -> Outcome:
    """Interpret one stored reply to a command of this kind."""
    status = ReplyStatus(reply.get("status") or ReplyStatus.COMPLETED)
    if status is ReplyStatus.FAILED:
        return Outcome(status, {}, str(reply.get("reason") or "the meter refused without a reason"))
    if status is ReplyStatus.ACKNOWLEDGED:
        return Outcome(status, {})
    result: dict[str, Any] = {}
    ts = reply.get("ts")
    if isinstance(ts, dt.datetime):
        result["ts"] = ts.isoformat()
    if kind is Kind.READ:
        if reply.get("register_import_kwh") is None:
            return Outcome(ReplyStatus.FAILED, {}, "the read's reply carried no import register")
        result["register_import_kwh"] = reply["register_import_kwh"]
        if reply.get("register_export_kwh") is not None:
            result["register_export_kwh"] = reply["register_export_kwh"]
    elif kind in RELAY_KINDS:
        expected = Relay.DISCONNECTED if kind is Kind.DISCONNECT else Relay.CONNECTED
        relay = reply.get("relay") or expected
        try:
            result["relay"] = Relay(relay).value
        except ValueError:
            return Outcome(ReplyStatus.FAILED, {}, f"unknown relay state {relay!r} in the reply")
        if kind is Kind.DISCONNECT and result["relay"] != Relay.DISCONNECTED:
            return Outcome(ReplyStatus.FAILED, result, f"the meter reports its relay {result['relay']}")
    elif kind is Kind.TIME_SYNC and reply.get("offset_s") is not None:
        result["offset_s"] = reply["offset_s"]  # the meter's clock error before it was set
    elif kind is Kind.DEMAND_RESET and reply.get("max_demand_kw") is not None:
        result["max_demand_kw"] = reply["max_demand_kw"]  # the demand that was reset
    return Outcome(ReplyStatus.COMPLETED, result)


def retry_delay_s(attempt: int, *, base_s: float, cap_s: float) -> float:
    """Seconds to wait for a reply to attempt n (1, 2, ...) before sending again: doubling, capped."""
    return float(min(cap_s, base_s * 2 ** max(0, attempt - 1)))
