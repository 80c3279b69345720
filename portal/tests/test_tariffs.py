"""Billing staff keep tariff versions in the portal; the CIS reads them over the API."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from mdms.core.localtime import local_today
from mdms.core.models import AuditLog, Tariff, TariffVersion
from mdms.core.testing import make_flat_tariff
from portal.api.testing import session_client, token_client


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_billing_staff_add_a_price_version_from_a_future_day(bill: Any, olivia: Any) -> None:
    tariff = make_flat_tariff("0.25")
    staff = client_for(bill)
    assert tariff.code in staff.get("/billing/tariffs/").content.decode()
    tomorrow = local_today() + dt.timedelta(days=1)

    response = staff.post(
        f"/billing/tariffs/{tariff.pk}/",
        {"effective_from": tomorrow.isoformat(), "fixed_monthly_charge": "11.00", "energy_rate_per_kwh": "0.27",
         "demand_charge_per_kw": "0", "export_credit_per_kwh": "0.05", "note": "Regulator's 2027 decision"},
    )  # fmt: skip

    assert response.status_code == 302
    version = TariffVersion.objects.get(tariff=tariff)
    assert (version.effective_from, version.energy_rate_per_kwh) == (tomorrow, Decimal("0.27000"))
    assert AuditLog.objects.filter(action="tariff_version", target=f"tariff:{tariff.code}", actor=bill).exists()
    page = staff.get(f"/billing/tariffs/{tariff.pk}/").content.decode()
    assert "Regulator&#x27;s 2027 decision" in page and "coming" in page
    assert client_for(olivia).get("/billing/tariffs/").status_code == 404


@pytest.mark.django_db
def test_a_version_from_today_is_refused_with_the_reason(bill: Any) -> None:
    tariff = make_flat_tariff("0.25")
    response = client_for(bill).post(
        f"/billing/tariffs/{tariff.pk}/",
        {"effective_from": local_today().isoformat(), "fixed_monthly_charge": "11.00", "energy_rate_per_kwh": "0.27",
         "demand_charge_per_kw": "0", "export_credit_per_kwh": "0"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "bills already issued keep their prices" in response.content.decode()
    assert not TariffVersion.objects.exists()


@pytest.mark.django_db
def test_the_cis_reads_tariffs_with_their_versions_and_a_consumer_only_their_own(alice: Any) -> None:
    TariffVersion.objects.create(tariff=alice.account.tariff, effective_from=dt.date(2027, 1, 1),
                                 fixed_monthly_charge=Decimal("11"), energy_rate_per_kwh=Decimal("0.27"))  # fmt: skip
    other = Tariff.objects.create(code="other", name="Other", energy_rate_per_kwh=Decimal("0.3"))

    body = token_client("cis_read").get("/api/v1/tariffs/").json()
    by_code = {row["code"]: row for row in body["results"]}
    assert set(by_code) == {alice.account.tariff.code, other.code}
    assert by_code[alice.account.tariff.code]["versions"] == [
        {"effective_from": "2027-01-01", "fixed_monthly_charge": "11.00", "energy_rate_per_kwh": "0.27000",
         "demand_charge_per_kw": "0.0000", "export_credit_per_kwh": "0.00000", "period_rates": {}, "note": "",
         "created_at": by_code[alice.account.tariff.code]["versions"][0]["created_at"]}
    ]  # fmt: skip
    own = session_client(alice.user).get("/api/v1/tariffs/").json()["results"]
    assert [row["code"] for row in own] == [alice.account.tariff.code]
    assert session_client(alice.user).get(f"/api/v1/tariffs/{other.pk}/").status_code == 404
    assert token_client("billing").get("/api/v1/tariffs/").status_code == 403
