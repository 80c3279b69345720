"""Each command kind against simulated meters on the real broker, through the real ingest, sent and
followed by the real dispatcher: completion, refusal, lateness, silence and expiry, the relay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from commands.dispatcher import Dispatcher
from commands.kinds import Kind
from commands.models import MeterCommand
from commands.services import command_request
from commands.tests.conftest import SimulatedFleet, wait_for
from ingest.simulator.runner import Behaviour
from ingest.testing import RunningWorker
from mdms.core.models import Meter
from mdms.core.testing import Person
from mdms.core.timeseries import readings as stored
from monitoring.outages import meters_out

pytestmark = [pytest.mark.slow]

Status = MeterCommand.Status


def finished(command: MeterCommand) -> Callable[[], bool]:
    def check() -> bool:
        command.refresh_from_db()
        return command.status in MeterCommand.FINAL

    return check


def history(command: MeterCommand) -> list[str]:
    return list(command.events.values_list("status", flat=True))


@pytest.mark.parametrize("kind", list(Kind))
def test_each_command_kind_completes_with_its_result(
    kind: Kind,
    people: list[Person],
    worker: RunningWorker,
    simulate: Callable[..., SimulatedFleet],
    dispatcher: Dispatcher,
    bill: Any,
) -> None:
    fleet = simulate()
    meter = people[0].meter
    command, created = command_request(meter=meter, kind=kind, reason="field test", requested_by=bill)
    assert created
    wait_for(finished(command), what=f"the {kind} to finish")
    assert command.status == Status.COMPLETED, command.failure
    assert history(command) == ["queued", "sent", "acknowledged", "completed"]
    assert command.attempts == 1
    simulated = fleet.meters[meter.serial]
    if kind is Kind.READ:
        assert command.result["register_import_kwh"] >= simulated.profile.initial_register_import_kwh
    elif kind is Kind.DISCONNECT:
        assert command.result["relay"] == "disconnected"
        assert not simulated.relay_connected
    elif kind is Kind.RECONNECT:
        assert command.result["relay"] == "connected"
    elif kind is Kind.TIME_SYNC:
        assert command.result["offset_s"] == 0.0
    elif kind is Kind.DEMAND_RESET:
        assert "max_demand_kw" in command.result
    meter.refresh_from_db()
    expected_relay = Meter.Relay.DISCONNECTED if kind is Kind.DISCONNECT else Meter.Relay.CONNECTED
    assert meter.relay_state == expected_relay


def test_a_refused_command_fails_with_the_meters_reason(
    people: list[Person], worker: RunningWorker, simulate: Callable[..., SimulatedFleet], dispatcher: Dispatcher
) -> None:
    meter = people[1].meter
    simulate({meter.serial: Behaviour.REFUSE})
    command, _ = command_request(meter=meter, kind=Kind.DISCONNECT, reason="non-payment")
    wait_for(finished(command), what="the refusal")
    assert command.status == Status.FAILED
    assert command.failure == "refused by the meter"
    meter.refresh_from_db()
    assert meter.relay_state == Meter.Relay.CONNECTED  # only a completed command moves the relay


def test_a_late_meter_is_acknowledged_first_and_completes_later(
    people: list[Person], worker: RunningWorker, simulate: Callable[..., SimulatedFleet], dispatcher: Dispatcher
) -> None:
    meter = people[1].meter
    simulate({meter.serial: Behaviour.LATE}, late_reply_s=4.0)
    command, _ = command_request(meter=meter, kind=Kind.READ)
    wait_for(lambda: MeterCommand.objects.get(pk=command.pk).status == Status.ACKNOWLEDGED, what="the acknowledgement")
    wait_for(finished(command), what="the late completion")
    assert command.status == Status.COMPLETED
    assert command.acknowledged_at is not None and command.finished_at is not None
    assert (command.finished_at - command.acknowledged_at).total_seconds() >= 3.0


def test_a_meter_that_never_answers_expires_after_its_retries(
    people: list[Person],
    worker: RunningWorker,
    simulate: Callable[..., SimulatedFleet],
    dispatcher: Dispatcher,
    settings: Any,
) -> None:
    settings.COMMANDS_RETRY_BASE_S = 1.0
    meter = people[2].meter
    simulate({meter.serial: Behaviour.NEVER})
    command, _ = command_request(meter=meter, kind=Kind.TIME_SYNC, deadline=timezone.now() + dt.timedelta(seconds=8))
    wait_for(finished(command), what="the expiry")
    assert command.status == Status.EXPIRED
    # Sent at 0 s, again after 1 s, after 2 more, after 4 more: the deadline at 8 s ends it.
    assert command.attempts >= 3
    assert history(command)[:3] == ["queued", "sent", "sent"]
    assert history(command)[-1] == "expired"
    assert "no answer from the meter" in command.failure


def test_commands_to_one_meter_go_one_at_a_time_most_urgent_first(
    people: list[Person], worker: RunningWorker, simulate: Callable[..., SimulatedFleet], dispatcher: Dispatcher
) -> None:
    meter = people[0].meter
    simulate({meter.serial: Behaviour.LATE}, late_reply_s=2.0)
    soon = timezone.now() + dt.timedelta(seconds=1)
    # Queued before the dispatcher may send them (not_before), so that the order is its choice.
    routine, _ = command_request(meter=meter, kind=Kind.TIME_SYNC, priority=3, not_before=soon)
    urgent, _ = command_request(meter=meter, kind=Kind.READ, priority=8, not_before=soon)
    wait_for(finished(routine), what="both commands")
    wait_for(finished(urgent))
    assert urgent.sent_at is not None and routine.sent_at is not None
    assert urgent.sent_at < routine.sent_at
    # The routine one left only once the urgent one had ended.
    assert urgent.finished_at is not None and routine.sent_at >= urgent.finished_at


def test_a_disconnect_drops_the_meters_load_to_zero_and_is_no_outage(
    people: list[Person], worker: RunningWorker, simulate: Callable[..., SimulatedFleet], dispatcher: Dispatcher
) -> None:
    fleet = simulate()
    meter = people[0].meter
    command, _ = command_request(meter=meter, kind=Kind.DISCONNECT, reason="move-out, no new tenant")
    wait_for(finished(command), what="the disconnect")
    assert command.status == Status.COMPLETED
    cut_at = fleet.clock()  # simulated time: readings after the next interval end are of an open relay

    def readings_after_cut() -> list[dict[str, Any]]:
        rows = stored.readings_for_meter(meter.pk, cut_at + dt.timedelta(minutes=15), fleet.clock())
        return [row for row in rows if row["ts"] > cut_at + dt.timedelta(minutes=15)]

    wait_for(lambda: len(readings_after_cut()) >= 3, what="readings after the disconnect")
    after = readings_after_cut()
    assert all(row["energy_import_kwh"] == 0.0 and row["power_w"] == 0.0 for row in after)
    assert all(row["voltage_v"] > 200 for row in after)  # the meter still measures the supply
    # A disconnected premise that falls silent is not counted as out.
    touched: dict[int, str] = {}
    assert meters_out(meter_pks=[meter.pk], at={meter.pk: timezone.now()}, source="silent", touched=touched) == []
    assert touched == {}
