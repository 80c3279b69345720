"""Billing over the API as billing staff use it with their session: determinants and on-demand reads.

These replace the session routes /api/v1/billing/determinants/ and /api/v1/billing/reads/ (moved
here with their tests); tokens are covered in test_api_endpoints.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.tests.bills_helpers import september_billed_on_the_first
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
