"""A final bill shows the register readings it starts and ends at: on the bill page and in the API."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from billing.models import Bill, OnDemandRead
from billing.on_demand_reads import on_demand_read_complete, on_demand_read_request
from billing.tests.bills_helpers import local, store_and_roll_up
from commands.models import MeterCommand
from mdms.core.localtime import local_midnight
from mdms.core.testing import make_consumer
from mdms.core.timeseries import readings as stored
from portal.api.testing import token_client

INTERVAL = dt.timedelta(minutes=15)
START_REGISTER = 4654.0  # kWh at local midnight of 1 November


@pytest.mark.django_db
def test_a_final_bill_shows_its_start_and_end_register_readings(mongo: Any, bill: Any) -> None:
    jade = make_consumer("jade")
    start = local_midnight(dt.date(2026, 11, 1))
    documents, ts, register = [], start + INTERVAL, START_REGISTER
    while ts <= local_midnight(dt.date(2026, 11, 20)):
        register += 0.25
        documents.append(
            stored.reading_document(
                meter_pk=jade.meter.pk, ts=ts, received_at=ts,
                values={"energy_import_kwh": 0.25, "energy_export_kwh": 0.0, "register_import_kwh": register,
                        "register_export_kwh": 12.5},
                interval_s=900,
            )
        )  # fmt: skip
        ts += INTERVAL
    # The first interval of November ends at 00:15: the register at midnight is the one October left.
    documents.insert(0, stored.reading_document(
        meter_pk=jade.meter.pk, ts=start, received_at=start,
        values={"energy_import_kwh": 0.25, "register_import_kwh": START_REGISTER, "register_export_kwh": 12.5},
        interval_s=900,
    ))  # fmt: skip
    store_and_roll_up(documents, [jade.meter.pk], dt.date(2026, 11, 1), dt.date(2026, 11, 20))
    read = on_demand_read_request(meter=jade.meter, purpose=OnDemandRead.Purpose.MOVE_OUT, account=jade.account,
                                  requested_by=bill)  # fmt: skip
    read_at = local(dt.date(2026, 11, 15), 10, 0).astimezone(dt.UTC)
    # The move-out read was asked just before the meter read its registers (a reply far from the
    # request is not trusted), and its command went out (sent, waiting for the reply).
    OnDemandRead.objects.filter(pk=read.pk).update(requested_at=read_at - dt.timedelta(minutes=1))
    MeterCommand.objects.filter(pk=read.meter_command_id).update(status=MeterCommand.Status.SENT, attempts=1)
    read.refresh_from_db()
    stored.insert_replies([{"meter": jade.meter.pk, "id": read.command_id, "ts": read_at, "register_import_kwh": 5000.0,
                            "register_export_kwh": 12.5, "received_at": read_at}])  # fmt: skip
    assert on_demand_read_complete(read=read)

    final = Bill.objects.get(account=jade.account)
    assert final.kind == Bill.Kind.FINAL
    assert (final.start_register_at, final.start_register_import_kwh) == (start, Decimal("4654.000"))
    assert (final.end_register_at, final.end_register_import_kwh) == (read_at, Decimal("5000.000"))
    assert final.end_register_import_kwh - final.start_register_import_kwh == final.import_kwh  # 346 kWh

    client = Client()
    client.force_login(jade.user)
    page = client.get(f"/bills/{final.pk}/").content.decode()
    assert "Meter readings" in page
    assert "4,654.000" in page and "5,000.000" in page

    body = token_client("billing").get(f"/api/v1/bills/{final.pk}/").json()
    assert body["start_register"] == {
        "at": "2026-11-01T00:00:00+01:00",
        "import_kwh": "4654.000",
        "export_kwh": "12.500",
    }
    assert body["end_register"] == {"at": "2026-11-15T10:00:00+01:00", "import_kwh": "5000.000", "export_kwh": "12.500"}
