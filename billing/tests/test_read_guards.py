"""On-demand reads that must not be trusted, and final bills that must not be issued (issue 14, items 2, 12)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from billing.bills import bill_final
from billing.models import Bill, OnDemandRead
from billing.on_demand_reads import on_demand_read_complete
from billing.tests.bills_helpers import readings, store_and_roll_up
from commands.models import MeterCommand
from mdms.core.timeseries import readings as stored

pytestmark = pytest.mark.django_db


def _read(person: Any, *, purpose: str = OnDemandRead.Purpose.MOVE_OUT, requested_at: dt.datetime) -> OnDemandRead:
    """A read whose command went out (sent, waiting for the meter's reply)."""
    command = MeterCommand.objects.create(
        command_id=uuid.uuid4().hex,
        meter=person.meter,
        kind="read",
        status=MeterCommand.Status.SENT,
        attempts=1,
        not_before=requested_at,
        deadline=requested_at + dt.timedelta(minutes=2),
        created_at=requested_at,
        sent_at=requested_at,
    )
    return OnDemandRead.objects.create(
        command_id=command.command_id,
        meter_command=command,
        meter=person.meter,
        account=person.account,
        purpose=purpose,
        requested_at=requested_at,
        timeout_at=requested_at + dt.timedelta(minutes=2),
    )


def _reply(read: OnDemandRead, ts: dt.datetime) -> None:
    stored.insert_replies(
        [
            {
                "meter": read.meter_id,
                "id": read.command_id,
                "ts": ts,
                "register_import_kwh": 4321.0,
                "register_export_kwh": None,
                "received_at": timezone.now(),
            }
        ]
    )


@pytest.mark.parametrize(
    ("offset", "words"),
    [(-dt.timedelta(days=6), "6 days before the request"), (dt.timedelta(days=3), "in the future")],
)
def test_a_reply_stamped_far_from_the_request_is_flagged_and_bills_nothing(
    alice: Any, bill: Any, mongo: Any, offset: dt.timedelta, words: str
) -> None:
    now = timezone.now()
    read = _read(alice, requested_at=now)
    _reply(read, now + offset)
    assert on_demand_read_complete(read=read)
    read.refresh_from_db()
    assert read.time_suspect and words in read.note
    assert not Bill.objects.exists()
    alice.account.refresh_from_db()
    assert alice.account.move_out_date is None  # a stale reply does not move anybody out
    client = Client()
    client.force_login(bill)
    page = client.get("/billing/reads/").content.decode()
    assert "time far from the request" in page and words in page


def test_a_reply_stamped_just_before_the_request_is_trusted(alice: Any, mongo: Any) -> None:
    now = timezone.now()
    read = _read(alice, purpose=OnDemandRead.Purpose.CHECK, requested_at=now)
    _reply(read, now - dt.timedelta(minutes=5))
    assert on_demand_read_complete(read=read)
    read.refresh_from_db()
    assert not read.time_suspect and read.note == ""


def test_a_final_bill_never_covers_days_after_the_move_out(alice: Any, mongo: Any) -> None:
    nov, dec = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
    store_and_roll_up(readings(alice.meter.pk, nov, dec), [alice.meter.pk], nov, dec)
    alice.account.move_out_date = dt.date(2026, 11, 10)
    alice.account.save(update_fields=["move_out_date"])
    later = _read(alice, requested_at=dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC))
    later.read_at = dt.datetime(2026, 11, 25, 9, 5, tzinfo=dt.UTC)
    later.save(update_fields=["read_at"])
    with pytest.raises(ValueError, match="after the move-out"):
        bill_final(read=later)
    assert not Bill.objects.exists()
    on_time = _read(alice, requested_at=dt.datetime(2026, 11, 10, 9, tzinfo=dt.UTC))
    on_time.read_at = dt.datetime(2026, 11, 10, 9, 5, tzinfo=dt.UTC)
    on_time.save(update_fields=["read_at"])
    final = bill_final(read=on_time)
    assert final is not None and final.period_end == dt.date(2026, 11, 11)
