"""Operator and billing lists: a page at a time, filtered, and the same rows as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import VeeException
from mdms.core.localtime import local_midnight
from mdms.core.models import Customer, Premise
from mdms.core.testing import make_consumer
from mdms.core.timeseries import anomalies as anomaly_store


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.django_db
def test_anomalies_page_by_50_filter_by_days_and_export_every_page(olivia: Any, alice: Any, mongo: Any) -> None:
    now = timezone.now()
    old_day = timezone.localdate() - dt.timedelta(days=10)
    documents = [
        {"meter_id": alice.meter.pk, "timestamp": now - dt.timedelta(minutes=5 * n), "rule": "voltage_band",
         "severity": "warning", "anomalies": ["voltage_v"], "feeder": alice.meter.premise.feeder_id}
        for n in range(1, 121)
    ] + [
        {"meter_id": alice.meter.pk, "timestamp": local_midnight(old_day) + dt.timedelta(hours=n), "rule": "voltage_band",
         "severity": "critical", "anomalies": ["voltage_v"], "feeder": alice.meter.premise.feeder_id}
        for n in range(7)
    ]  # fmt: skip
    anomaly_store.insert_anomalies(documents)
    client = client_for(olivia)

    first = client.get("/operator/anomalies/")
    assert len(first.context["rows"]) == 50 and first.context["listing"].total == 120
    third = client.get("/operator/anomalies/", {"page": 3})
    assert len(third.context["rows"]) == 20
    assert len(csv_rows(client.get("/operator/anomalies/", {"format": "csv"}))) == 120

    chosen = {"since": old_day.isoformat(), "until": old_day.isoformat()}
    days = client.get("/operator/anomalies/", chosen)
    assert days.context["listing"].total == 7
    exported = csv_rows(client.get("/operator/anomalies/", {**chosen, "format": "csv"}))
    assert [row["severity"] for row in exported] == ["critical"] * 7
    assert {row["meter"] for row in exported} == {alice.meter.serial}


@pytest.mark.django_db
def test_the_exception_queue_pages_and_exports_its_filter(bill: Any, alice: Any) -> None:
    start = local_midnight(dt.date(2026, 11, 1))
    VeeException.objects.bulk_create(
        [
            VeeException(meter=alice.meter, kind=VeeException.Kind.choices[0][0], status=VeeException.Status.OPEN,
                         period_start=start + dt.timedelta(hours=n), period_end=start + dt.timedelta(hours=n + 1),
                         detail={"n": n})
            for n in range(60)
        ]
    )  # fmt: skip
    client = client_for(bill)
    page = client.get("/billing/exceptions/")
    assert page.context["listing"].total == 60 and len(page.context["exceptions"]) == 50
    assert len(csv_rows(client.get("/billing/exceptions/", {"format": "csv"}))) == 60


@pytest.mark.django_db
def test_billing_lookup_finds_accounts_by_city_and_e_mail(bill: Any, mongo: Any) -> None:
    quinn = make_consumer("quinn")
    Customer.objects.filter(pk=quinn.customer.pk).update(email="quinn.rivers@example.net")
    Premise.objects.filter(pk=quinn.account.premise_id).update(city="Vaulx-en-Velin")
    make_consumer("rosa")
    client = client_for(bill)

    for query in ("vaulx-en-velin", "quinn.rivers@example", "example.net"):
        accounts = client.get("/billing/lookup/", {"q": query}).context["accounts"]
        assert [a.number for a in accounts.rows] == [quinn.account.number], query
    meters = client.get("/billing/lookup/", {"q": "Vaulx"}).context["meters"]
    assert [m.serial for m in meters.rows] == [quinn.meter.serial]


@pytest.mark.django_db
def test_billing_runs_and_reads_filter_by_state_and_days(bill: Any, alice: Any) -> None:
    from billing.models import BillingRun, OnDemandRead

    for n, status in enumerate([BillingRun.Status.COMPLETED, BillingRun.Status.FAILED, BillingRun.Status.COMPLETED]):
        day = dt.date(2026, 9, 1) + dt.timedelta(days=n)
        BillingRun.objects.create(run_date=day, cycle_day=day.day, period_start=day, period_end=day, status=status)
    now = timezone.now()
    for n, read_status in enumerate([OnDemandRead.Status.PENDING, OnDemandRead.Status.TIMED_OUT]):
        OnDemandRead.objects.create(command_id=f"cmd-{n}", meter=alice.meter, status=read_status,
                                    requested_at=now - dt.timedelta(days=n * 3), timeout_at=now)  # fmt: skip
    client = client_for(bill)

    failed = client.get("/billing/", {"status": "failed"}).context["runs"]
    assert [r.run_date for r in failed] == [dt.date(2026, 9, 2)]
    days = client.get("/billing/", {"run_from": "2026-09-02", "run_to": "2026-09-03", "format": "csv"})
    assert [row["run_date"] for row in csv_rows(days)] == ["2026-09-03", "2026-09-02"]
    timed_out = client.get("/billing/reads/", {"status": "timed_out"}).context["reads"]
    assert [r.command_id for r in timed_out] == ["cmd-1"]
    recent = client.get("/billing/reads/live/", {"requested_from": timezone.localdate().isoformat()})
    assert [r.command_id for r in recent.context["reads"]] == ["cmd-0"]


@pytest.mark.django_db
@pytest.mark.parametrize("data", [None, {"feeder": "FEEDER", "region": "x"}, {"feeder": "999999"}, {"feeder": "a<b"}])
def test_the_quick_select_writes_the_markup_of_djangos_select(data: dict[str, str] | None) -> None:
    from django import forms

    from mdms.core.models import Feeder, Region
    from mdms.core.testing import make_grid
    from portal.listing import QuickSelect

    feeder = make_grid("quick")
    Feeder.objects.create(region=feeder.region, code="q<&>", name='Odd "name" <b>')

    def form(widget: type[forms.Select]) -> forms.Form:
        class Filter(forms.Form):
            feeder = forms.ModelChoiceField(
                queryset=Feeder.objects.select_related("region").order_by("code"),
                required=False,
                empty_label="All feeders",
                widget=widget,
            )
            region = forms.ModelChoiceField(queryset=Region.objects.order_by("code"), widget=widget)
            severity = forms.ChoiceField(
                choices=[("", "Any"), ("warning", "Warning & worse")], required=False, widget=widget
            )

        chosen = {k: str(feeder.pk) if v == "FEEDER" else v for k, v in data.items()} if data else None
        return Filter(chosen)

    django_form, quick_form = form(forms.Select), form(QuickSelect)
    for name in ("feeder", "region", "severity"):
        assert str(quick_form[name]) == str(django_form[name])
