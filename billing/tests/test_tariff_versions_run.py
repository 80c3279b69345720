"""A bill run over a price change: the days before it at the old prices, the days after at the new."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from billing.bills import bill_run_create, bill_run_execute
from billing.models import Bill
from billing.tests.bills_helpers import readings, store_and_roll_up
from mdms.core.models import Tariff, TariffVersion
from mdms.core.testing import make_consumer

NOV, DEC = dt.date(2026, 11, 1), dt.date(2026, 12, 1)


@pytest.mark.django_db
def test_a_price_change_on_the_16th_bills_half_the_month_at_each_price(mongo: Any) -> None:
    tariff = Tariff.objects.create(code="flat-v", name="Flat, versioned", energy_rate_per_kwh=Decimal("0.25"),
                                   fixed_monthly_charge=Decimal("10"))  # fmt: skip
    TariffVersion.objects.create(tariff=tariff, effective_from=dt.date(2026, 11, 16), fixed_monthly_charge=Decimal("12"),
                                 energy_rate_per_kwh=Decimal("0.30"))  # fmt: skip
    mia = make_consumer("mia", tariff=tariff)
    store_and_roll_up(readings(mia.meter.pk, NOV, DEC), [mia.meter.pk], NOV, DEC)  # 24 kWh a day

    bill_run_execute(run=bill_run_create(run_date=DEC))

    bill = Bill.objects.get(account=mia.account)
    lines = {item.code: item.amount for item in bill.line_items.all()}
    assert lines == {
        "fixed@2026-11-01": Decimal("5.00"),  # 10 x 15/30
        "energy@2026-11-01": Decimal("90.00"),  # 360 kWh x 0.25
        "fixed@2026-11-16": Decimal("6.00"),  # 12 x 15/30
        "energy@2026-11-16": Decimal("108.00"),  # 360 kWh x 0.30
    }
    assert bill.total == Decimal("209.00")
    assert bill.import_kwh == Decimal("720.000")
