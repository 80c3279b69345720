"""Billing over the API as billing staff use it with their session: determinants and on-demand reads.

These replace the session routes /api/v1/billing/determinants/ and /api/v1/billing/reads/ (moved
here with their tests); tokens are covered in test_api_endpoints.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from billing.tests.bills_helpers import release_in_batches, september_billed_on_the_first
from mdms.core.models import Account
from mdms.core.testing import make_consumer
from portal.api.testing import rest_settings

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture
def september(alice: Any, bob: Any, mongo: Any) -> list[Any]:
    return september_billed_on_the_first(alice, bob)


def test_the_api_pages_the_determinants_of_a_billing_date(september: list[Any], bill: Any, client: APIClient) -> None:
    client.force_login(bill)
    page = client.get("/api/v1/determinants/", {"date": "2026-10-01", "page_size": "2"}).json()
    assert page["count"] == 3 and page["next"] is not None
    assert [r["account_number"] for r in page["results"]] == ["ACC-ALICE", "ACC-BOB"]
    assert page["results"][1]["import_kwh"] == "1440.000"
    rest = client.get(page["next"]).json()
    assert [r["account_number"] for r in rest["results"]] == ["ACC-CAROL"]
    mid = client.get("/api/v1/determinants/", {"date": "2026-10-15"}).json()
    assert [r["account_number"] for r in mid["results"]] == ["ACC-DAN"]


def _walk(client: APIClient, url: str) -> list[str]:
    """Every page of a determinants list, as a CIS follows `next`: the account numbers in order."""
    numbers: list[str] = []
    next_url: str | None = url
    while next_url:
        page = client.get(next_url).json()
        numbers += [row["account_number"] for row in page["results"]]
        next_url = page["next"]
    return numbers


def test_the_determinants_pages_hold_every_account_due_once_in_order(
    september: list[Any], bill: Any, client: APIClient
) -> None:
    for name in ("erin", "frank", "grace", "heidi"):
        make_consumer(name)
    make_consumer("ivan", bill_cycle_day=2)  # due another day: on no page
    due = list(Account.objects.filter(bill_cycle_day=1).order_by("pk").values_list("number", flat=True))
    client.force_login(bill)
    walked = _walk(client, "/api/v1/determinants/?date=2026-10-01&page_size=2")
    assert walked == due and len(set(walked)) == 7
    # A delivery batch pages the same way: its own accounts, each once, in the same order.
    release_in_batches(dt.date(2026, 10, 1), size=3)
    batches = [_walk(client, f"/api/v1/determinants/?date=2026-10-01&batch={n}&page_size=2") for n in (1, 2, 3)]
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sorted((number for b in batches for number in b), key=due.index) == due
    assert all(b == sorted(b, key=due.index) for b in batches)


def test_a_page_of_determinants_costs_the_same_queries_however_many_accounts_are_due(
    september: list[Any], bill: Any, client: APIClient
) -> None:
    client.force_login(bill)
    url = "/api/v1/determinants/?date=2026-10-01&page_size=2"
    loaded: list[int] = []

    def count_accounts(sender: Any, instance: Account, **kwargs: Any) -> None:
        loaded.append(instance.pk)

    def queries() -> int:
        loaded.clear()
        post_init.connect(count_accounts, sender=Account)
        try:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(url).status_code == 200
        finally:
            post_init.disconnect(count_accounts, sender=Account)
        return len(captured.captured_queries)

    few = queries()
    for name in ("erin", "frank", "grace", "heidi", "ivan", "judy"):
        make_consumer(name)
    assert queries() == few
    # Only the page's own accounts are read (the database counts and slices), not every account due.
    assert len(set(loaded)) == 2


def test_the_determinants_api_is_for_billing_staff_only(september: list[Any], client: APIClient) -> None:
    client.force_login(september[0].user)
    assert client.get("/api/v1/determinants/", {"date": "2026-10-01"}).status_code == 403
    client.logout()
    # No credentials at all: the API's 401 with its Bearer challenge (the old session route said 403).
    assert client.get("/api/v1/determinants/", {"date": "2026-10-01"}).status_code == 401


def test_the_determinants_api_refuses_a_day_no_account_can_have(bill: Any, client: APIClient) -> None:
    client.force_login(bill)
    response = client.get("/api/v1/determinants/", {"date": "2026-10-30"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "date"


def test_billing_staff_request_an_on_demand_read_over_the_api(alice: Any, bill: Any, client: APIClient) -> None:
    client.force_login(bill)
    created = client.post("/api/v1/reads/", {"meter": alice.meter.serial, "purpose": "move_out",
                                             "account": alice.account.number}, format="json")  # fmt: skip
    assert created.status_code == 201
    body = created.json()
    assert (body["meter"], body["account"], body["purpose"], body["status"]) == (
        alice.meter.serial, alice.account.number, "move_out", "pending",
    )  # fmt: skip
    listed = client.get("/api/v1/reads/", {"status": "pending"}).json()
    assert [r["id"] for r in listed["results"]] == [body["id"]]
    assert client.get(f"/api/v1/reads/{body['id']}/").json()["status"] == "pending"
