"""Staff send commands from a meter's page: billing staff and operators may, consumers may not;
cutting supply needs a reason and is audited."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from commands.kinds import Kind
from commands.models import MeterCommand
from commands.services import command_request
from mdms.core.models import AuditLog
from mdms.core.testing import Person

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def send(client: Client, person: Person, **form: str) -> Any:
    page = f"/billing/meters/{person.meter.pk}/"
    return client.post(f"/meters/{person.meter.pk}/commands/", {"next": page, **form}, follow=True)


def test_billing_staff_disconnect_with_a_reason_is_queued_and_audited(alice: Person, bill: Any) -> None:
    response = send(client_for(bill), alice, kind="disconnect", reason="non-payment, notice served", priority="6")
    assert response.status_code == 200
    command = MeterCommand.objects.get(meter=alice.meter)
    assert (command.kind, command.priority, command.requested_by) == ("disconnect", 6, bill)
    assert AuditLog.objects.filter(action=AuditLog.Action.METER_COMMAND, target=f"meter:{alice.meter.serial}").exists()
    page = response.content.decode()
    assert "Disconnect queued" in page and "non-payment, notice served" in page


def test_a_disconnect_without_a_reason_is_refused_with_the_reason_why(alice: Person, bill: Any) -> None:
    response = send(client_for(bill), alice, kind="disconnect", reason="  ")
    assert "needs a reason" in response.content.decode()
    assert not MeterCommand.objects.exists()


def test_operators_see_the_commands_and_the_relay_on_their_meter_page(alice: Person, olivia: Any) -> None:
    command_request(meter=alice.meter, kind=Kind.TIME_SYNC, not_before=timezone.now() + dt.timedelta(days=1))
    page = client_for(olivia).get(f"/operator/meters/{alice.meter.pk}/").content.decode()
    assert "relay connected" in page and "time sync" in page and "Queued" in page


def test_consumers_cannot_send_commands(alice: Person) -> None:
    response = client_for(alice.user).post(f"/meters/{alice.meter.pk}/commands/", {"kind": "read"})
    assert response.status_code == 404
    assert not MeterCommand.objects.exists()
