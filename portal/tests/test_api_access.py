"""Who may see and do what through the API: the BOLA matrix (built from the schema), scopes, auth."""

from __future__ import annotations

import re
from typing import Any

import pytest
from rest_framework.test import APIClient

from mdms.core.models import AuditLog, Meter
from portal.api.testing import make_owned, rest_settings, session_client, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _unthrottled(settings: Any) -> None:
    settings.REST_FRAMEWORK = rest_settings()


@pytest.fixture
def schema_paths(alice: Any) -> dict[str, dict[str, Any]]:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths: dict[str, dict[str, Any]] = response.json()["paths"]
    return paths


# Every operation the API offered when the older fronts were folded into it (issue 15), the ones a
# CIS uses among them; the schema may grow, never lose one.
V1_OPERATIONS = {
    "GET /api/v1/accounts/",
    "GET /api/v1/accounts/{id}/",
    "GET /api/v1/anomalies/",
    "GET /api/v1/anomalies/counts/",
    "GET /api/v1/bills/",
    "GET /api/v1/bills/{id}/",
    "GET /api/v1/commands/",
    "POST /api/v1/commands/",
    "GET /api/v1/commands/{id}/",
    "POST /api/v1/commands/{id}/cancel/",
    "GET /api/v1/customers/",
    "GET /api/v1/customers/{id}/",
    "GET /api/v1/determinants/",
    "GET /api/v1/determinants/pending/",
    "GET /api/v1/incidents/",
    "GET /api/v1/incidents/{id}/",
    "GET /api/v1/ingest/stats/",
    "GET /api/v1/meters/",
    "POST /api/v1/meters/",
    "GET /api/v1/meters/{id}/",
    "GET /api/v1/meters/{id}/anomalies/",
    "POST /api/v1/meters/{id}/disable/",
    "POST /api/v1/meters/{id}/enable/",
    "GET /api/v1/meters/{id}/events/",
    "GET /api/v1/meters/{id}/readings/",
    "GET /api/v1/out-now/",
    "GET /api/v1/premises/",
    "GET /api/v1/premises/{id}/",
    "GET /api/v1/reads/",
    "POST /api/v1/reads/",
    "GET /api/v1/reads/{id}/",
    "GET /api/v1/silent-meters/",
}


def test_the_schema_lists_every_v1_operation_and_nothing_outside_v1(schema_paths: dict[str, dict[str, Any]]) -> None:
    listed = {f"{method.upper()} {path}" for path, operations in schema_paths.items() for method in operations}
    assert listed >= V1_OPERATIONS, f"missing from /api/schema/: {sorted(V1_OPERATIONS - listed)}"
    assert all(path.startswith("/api/v1/") for path in schema_paths)


def test_the_older_fronts_are_gone_and_answer_in_the_error_format(olivia: Any) -> None:
    client = session_client(olivia)
    for path in ("/api/v1/billing/determinants/", "/api/v1/monitoring/incidents/"):
        response = client.get(path, {"date": "2026-11-01"})
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", path
    assert client.get("/ingest/stats/").status_code == 404


def _resource(path: str) -> str:
    return path.removeprefix("/api/v1/").split("/")[0]


def test_every_route_with_an_id_answers_404_to_another_consumers_object(
    alice: Any, bob: Any, schema_paths: dict[str, dict[str, Any]]
) -> None:
    bobs = make_owned(bob)
    client = session_client(alice.user)
    checked = []
    for path, operations in schema_paths.items():
        if "{" not in path:
            continue
        resource = _resource(path)
        assert resource in bobs.ids, f"{path}: the BOLA matrix does not know which object of bob's to try"
        url = re.sub(r"\{[^}]+\}", str(bobs.ids[resource]), path)
        for method in operations:
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code}"
            assert response.json()["error"]["code"] == "not_found"
            checked.append(f"{method} {path}")
    assert len(checked) >= 10  # meters, their readings/events/anomalies/disable/enable, and the rest


def test_every_list_holds_only_the_consumers_own_objects(
    alice: Any, bob: Any, schema_paths: dict[str, dict[str, Any]]
) -> None:
    make_owned(alice)
    bobs = make_owned(bob)
    client = session_client(alice.user)
    lists = [path for path, operations in schema_paths.items() if "{" not in path and "get" in operations]
    assert len(lists) >= 8
    for path in lists:
        # Only the determinants take a date: any other list refuses a parameter it does not know.
        response = client.get(path, {"date": "2026-11-01"} if path.endswith("/determinants/") else {})
        assert response.status_code in (200, 403), f"{path}: {response.status_code}"
        text = response.content.decode()
        for marker in bobs.markers:
            assert marker not in text, f"{path} shows bob's {marker}"
    assert alice.meter.serial in client.get("/api/v1/meters/").content.decode()


def test_ids_in_the_query_string_do_not_reach_other_consumers_objects(alice: Any, bob: Any) -> None:
    client = session_client(alice.user)
    assert client.get("/api/v1/accounts/", {"customer": bob.customer.pk}).json()["results"] == []
    assert client.get("/api/v1/meters/", {"premise": bob.account.premise_id}).json()["results"] == []
    assert client.get("/api/v1/bills/", {"account": bob.account.number}).json()["results"] == []


def test_a_consumer_cannot_disable_their_own_meter(alice: Any) -> None:
    response = session_client(alice.user).post(f"/api/v1/meters/{alice.meter.pk}/disable/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    alice.meter.refresh_from_db()
    assert alice.meter.status == Meter.Status.ACTIVE


def test_a_read_only_cis_token_cannot_disable_a_meter_or_request_a_read(alice: Any) -> None:
    client = token_client("cis_read")
    assert client.get(f"/api/v1/meters/{alice.meter.pk}/").status_code == 200
    assert client.post(f"/api/v1/meters/{alice.meter.pk}/disable/").status_code == 403
    response = client.post("/api/v1/reads/", {"meter": alice.meter.serial}, format="json")
    assert response.status_code == 403
    alice.meter.refresh_from_db()
    assert alice.meter.status == Meter.Status.ACTIVE
    assert not AuditLog.objects.filter(action__in=["meter_disable", "on_demand_read"]).exists()


def test_a_meter_admin_token_disables_and_enables_a_meter_and_both_are_audited(alice: Any) -> None:
    client = token_client("meter_admin", name="head-end")
    response = client.post(f"/api/v1/meters/{alice.meter.pk}/disable/")
    assert response.status_code == 200
    assert response.json()["status"] == "disabled"
    assert client.post(f"/api/v1/meters/{alice.meter.pk}/enable/").json()["status"] == "active"
    rows = list(AuditLog.objects.order_by("id").values_list("actor_label", "action", "target"))
    assert rows[-2:] == [
        ("token:head-end", "meter_disable", f"meter:{alice.meter.serial}"),
        ("token:head-end", "meter_enable", f"meter:{alice.meter.serial}"),
    ]


def test_a_billing_token_requests_a_read_and_the_request_is_audited(alice: Any) -> None:
    client = token_client("billing", name="sap")
    response = client.post("/api/v1/reads/", {"meter": alice.meter.serial, "purpose": "move_out"}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    status = client.get(f"/api/v1/reads/{response.json()['id']}/").json()
    assert status["meter"] == alice.meter.serial
    assert AuditLog.objects.filter(action="on_demand_read", actor_label="token:sap").count() == 1


def test_a_revoked_or_unknown_token_is_refused_with_401(alice: Any) -> None:
    from mdms.core.api_tokens import api_token_issue, api_token_revoke

    issued = api_token_issue(name="old", scopes=["cis_read"])
    api_token_revoke(token=issued.token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    response = client.get("/api/v1/meters/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "authentication_failed"
    assert APIClient().get("/api/v1/meters/").status_code == 401


def test_session_writes_need_the_csrf_token(olivia: Any, alice: Any) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(olivia)
    response = client.post(f"/api/v1/meters/{alice.meter.pk}/disable/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    # The portal's pages set this cookie; the JavaScript sends it back as X-CSRFToken.
    secret = "a" * 32
    client.cookies["csrftoken"] = secret
    response = client.post(f"/api/v1/meters/{alice.meter.pk}/disable/", HTTP_X_CSRFTOKEN=secret)
    assert response.status_code == 200


def test_a_token_without_the_scope_gets_a_403_that_names_the_scope_needed(alice: Any) -> None:
    response = token_client("cis_read").get("/api/v1/determinants/", {"date": "2026-11-01"})
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "'billing'" in message and "'cis_read'" in message


def test_tokens_are_stored_hashed_and_shown_once(db: None) -> None:
    from mdms.core.api_tokens import api_token_issue
    from mdms.core.models import ApiToken

    issued = api_token_issue(name="cis", scopes=["cis_read"])
    stored = ApiToken.objects.get(pk=issued.token.pk)
    assert issued.key not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64
    assert AuditLog.objects.filter(action="token_issue", target=f"token:{stored.pk}").exists()


# --- Green Button Connect (greenbutton/): the ESPI routes, read with a third party's bearer token ----


def _espi_routes() -> list[str]:
    """Every ESPI route, from greenbutton's URLconf itself: a route added later is in the matrix at once."""
    from greenbutton.urls import urlpatterns

    return [str(pattern.pattern) for pattern in urlpatterns if str(pattern.pattern).startswith("espi/")]


def _espi_url(route: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[-1]
        assert name in values, f"{route}: the ESPI BOLA matrix does not know which {name} to try"
        return values[name]

    return "/" + re.sub(r"<([^>]+)>", value, route)


def test_every_espi_route_with_an_id_answers_404_to_another_consumers_object(alice: Any, bob: Any, mongo: Any) -> None:
    import datetime as dt

    from django.test import Client
    from django.utils import timezone

    from greenbutton.services import application_register
    from greenbutton.tests.connect import connected
    from portal.tests.usage_data import make_bill, store_days

    app = application_register(name="SolarPal", redirect_uris=["https://solarpal.example/cb"]).application
    day = timezone.localdate() - dt.timedelta(days=1)
    store_days(bob.meter, day, day + dt.timedelta(days=1))
    bobs_bill = make_bill(bob, period_start=(day - dt.timedelta(days=40)).replace(day=1))
    mine, alices_token = connected(alice, app)
    bobs, _ = connected(bob, app)
    # Bob's objects, reached through Bob's subscription id and through Alice's own.
    bobs_objects = {"meter_pk": str(bob.meter.pk), "reading": "1", "day": f"{day:%Y%m%d}",
                    "summary_pk": str(bobs_bill.pk), "reading_type": f"{bob.meter.pk}-1"}  # fmt: skip
    client = Client(HTTP_AUTHORIZATION=f"Bearer {alices_token}")
    checked = []
    for route in _espi_routes():
        if "<" not in route or route.startswith("espi/1_1/resource/LocalTimeParameters"):
            continue  # lists are the token's own; the utility's time zone belongs to no one
        for subscription in {bobs.pk, mine.pk}:
            url = _espi_url(route, {**bobs_objects, "subscription_pk": str(subscription)})
            if url.count("/Subscription/") and subscription == mine.pk and "meter_pk" not in route:
                continue  # Alice's own subscription, nothing of Bob's in the path
            response = client.get(url)
            assert response.status_code == 404, f"GET {url}: {response.status_code}"
            assert response.json()["error"]["code"] == "not_found"
            assert bob.meter.serial not in response.content.decode()
            checked.append(url)
    assert len(checked) >= 12


def test_every_espi_route_refuses_a_request_without_a_token_even_with_a_session(alice: Any) -> None:
    from django.test import Client

    client = Client()
    client.force_login(alice.user)  # a consumer's own session is no third-party token
    values = {"subscription_pk": "1", "meter_pk": str(alice.meter.pk), "reading": "1", "day": "20261101",
              "summary_pk": "1", "reading_type": f"{alice.meter.pk}-1", "ltp_pk": "1"}  # fmt: skip
    routes = _espi_routes()
    assert len(routes) >= 14
    for route in routes:
        url = _espi_url(route, values)
        response = client.get(url)
        assert response.status_code == 401, f"GET {url}: {response.status_code}"
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "authentication_failed"


def test_an_espi_list_holds_only_the_tokens_own_usage_points(alice: Any, bob: Any) -> None:
    from django.test import Client

    from greenbutton.services import application_register
    from greenbutton.tests.connect import connected

    app = application_register(name="SolarPal", redirect_uris=["https://solarpal.example/cb"]).application
    mine, token = connected(alice, app)
    connected(bob, app)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    for url in [f"/espi/1_1/resource/Batch/Subscription/{mine.pk}", f"/espi/1_1/resource/Subscription/{mine.pk}",
                "/espi/1_1/resource/ReadingType"]:  # fmt: skip
        text = client.get(url).content.decode()
        assert alice.meter.serial in text or f"ReadingType/{alice.meter.pk}-1" in text, url
        assert bob.meter.serial not in text and f"ReadingType/{bob.meter.pk}-" not in text, url


def test_espi_routes_are_read_only_with_the_apis_error_shape(alice: Any) -> None:
    from django.test import Client

    response = Client().post("/espi/1_1/resource/Batch/Subscription/1")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["error"]["code"] == "method_not_allowed"
