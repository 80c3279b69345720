"""Green Button Connect end to end through Django's test client: consent, tokens, ESPI resources, isolation."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from greenbutton.models import Subscription
from greenbutton.services import application_register
from greenbutton.tests.connect import (
    ATOM,
    ESPI,
    FULL_SCOPE,
    INTERVALS_SCOPE,
    SUMMARY_SCOPE,
    Pkce,
    authorize_query,
    resources,
    validated,
)
from mdms.core.localtime import local_midnight
from mdms.core.testing import Person, make_consumer
from portal.tests.usage_data import make_bill, store_days

pytestmark = pytest.mark.django_db
REDIRECT = "https://solarpal.example/callback"


@pytest.fixture
def solarpal(db: None) -> Any:
    return application_register(name="SolarPal", redirect_uris=[REDIRECT])


def _consent(
    client: Client,
    app: Any,
    person: Person,
    *,
    scope: str = FULL_SCOPE,
    start: dt.date | None = None,
    allow: bool = True,
) -> tuple[str, Pkce]:
    """Log in as the person, consent to everything asked; the authorization code and the PKCE pair."""
    pkce = Pkce.new()
    client.force_login(person.user)
    page = client.get(
        f"/oauth/authorize/?{authorize_query(client_id=app.application.client_id, redirect_uri=REDIRECT, pkce=pkce, scope=scope)}"
    )
    assert page.status_code == 200, page.content[:500]
    form = page.context["form"]
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name not in ("meters", "start_date", "end_date")
    }
    data |= {
        "meters": [m.pk for m in form.initial["meters"]],
        "start_date": str(start or form.initial["start_date"]),
        "end_date": "",
    }
    if allow:
        data["allow"] = "Authorize"
    response = client.post("/oauth/authorize/", data)
    assert response.status_code == 302, response.content[:800]
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["state"] == ["xyz"]
    return (query["code"][0] if allow else query["error"][0]), pkce


def _basic(app: Any) -> str:
    pair = f"{app.application.client_id}:{app.client_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def _token(client: Client, app: Any, code: str, pkce: Pkce) -> Any:
    return client.post(
        "/oauth/token/",
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": pkce.verifier},
        HTTP_AUTHORIZATION=_basic(app),
    )


def _connect(app: Any, person: Person, **consent: Any) -> dict[str, Any]:
    code, pkce = _consent(Client(), app, person, **consent)
    response = _token(Client(), app, code, pkce)
    assert response.status_code == 200, response.content
    tokens: dict[str, Any] = response.json()
    return tokens


def _get(url: str, token: str, **params: str) -> Any:
    return Client().get(url, params, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_the_consent_page_names_the_application_the_meters_and_the_data(solarpal: Any) -> None:
    sol = make_consumer("sol", has_solar=True)
    client = Client()
    client.force_login(sol.user)
    query = authorize_query(client_id=solarpal.application.client_id, redirect_uri=REDIRECT, pkce=Pkce.new())

    page = client.get(f"/oauth/authorize/?{query}")

    text = page.content.decode()
    assert page.status_code == 200
    assert "SolarPal" in text and sol.meter.serial in text
    assert "Interval electricity metering" in text and "Usage summary with cost" in text
    assert "15 minutes" in text
    assert 'type="date"' in text and "css/mdms.css" in text


def test_a_request_without_pkce_is_refused_and_no_code_is_issued(solarpal: Any, alice: Person) -> None:
    client = Client()
    client.force_login(alice.user)
    query = authorize_query(client_id=solarpal.application.client_id, redirect_uri=REDIRECT, pkce=None)

    response = client.get(f"/oauth/authorize/?{query}")

    assert response.status_code == 302
    assert parse_qs(urlsplit(response["Location"]).query)["error"] == ["invalid_request"]
    assert not Subscription.objects.exists()


def test_a_redirect_uri_that_was_not_registered_is_refused_on_the_page(solarpal: Any, alice: Person) -> None:
    client = Client()
    client.force_login(alice.user)
    query = authorize_query(
        client_id=solarpal.application.client_id, redirect_uri="https://evil.example/cb", pkce=Pkce.new()
    )

    response = client.get(f"/oauth/authorize/?{query}")

    assert response.status_code == 400
    assert "cannot be accepted" in response.content.decode()


def test_a_wrong_code_verifier_gets_no_token(solarpal: Any, alice: Person) -> None:
    code, _ = _consent(Client(), solarpal, alice)
    response = _token(Client(), solarpal, code, Pkce.new())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_refusing_consent_sends_access_denied_and_shares_nothing(solarpal: Any, alice: Person) -> None:
    error, _ = _consent(Client(), solarpal, alice, allow=False)
    assert error == "access_denied"
    assert not Subscription.objects.exists()


def test_the_batch_holds_every_resource_and_validates(solarpal: Any, mongo: Any) -> None:
    sol = make_consumer("sol", has_solar=True)
    day = timezone.localdate() - dt.timedelta(days=3)
    store_days(sol.meter, day, day + dt.timedelta(days=2), import_kwh=0.3, export_kwh=0.1)
    make_bill(sol, period_start=day.replace(day=1) - dt.timedelta(days=40))
    tokens = _connect(solarpal, sol, start=day - dt.timedelta(days=60))
    subscription = Subscription.objects.get()
    assert tokens["resourceURI"] == f"http://testserver/espi/1_1/resource/Batch/Subscription/{subscription.pk}"

    response = _get(f"/espi/1_1/resource/Batch/Subscription/{subscription.pk}", tokens["access_token"])

    assert response.status_code == 200
    assert response["Content-Type"] == "application/atom+xml"
    root = validated(response.content)
    kinds = resources(root)
    assert kinds.count("UsagePoint") == 1 and kinds.count("LocalTimeParameters") == 1
    assert kinds.count("MeterReading") == 2 and kinds.count("ReadingType") == 2  # import and export
    assert kinds.count("IntervalBlock") == 4  # two days, two directions
    assert kinds.count("UsageSummary") == 1
    summary = next(c[0] for c in root.iter(f"{ATOM}content") if c[0].tag == f"{ESPI}UsageSummary")
    assert summary.findtext(f"{ESPI}billLastPeriod") == "4250000"  # 42.50 EUR in hundred-thousandths
    assert summary.findtext(f"{ESPI}currency") == "978"  # EUR
    readings = list(root.iter(f"{ESPI}IntervalReading"))
    expected = int((local_midnight(day + dt.timedelta(days=2)) - local_midnight(day)).total_seconds() // 900)
    assert len(readings) == 2 * expected


def test_reading_quality_marks_an_estimated_interval(solarpal: Any, mongo: Any, alice: Person) -> None:
    from billing.rollups import rollups_rebuild
    from mdms.core.timeseries import rollups as rollup_store

    day = timezone.localdate() - dt.timedelta(days=2)
    gap = local_midnight(day) + dt.timedelta(hours=3)
    store_days(alice.meter, day, day + dt.timedelta(days=1), import_kwh=0.3, missing={gap})
    rollup_store.upsert_estimates(
        [
            {
                "meter": alice.meter.pk,
                "ts": gap,
                "energy_import_kwh": 0.2,
                "energy_export_kwh": 0.0,
                "interval_s": 900,
                "method": "test",
            }
        ]
    )
    rollups_rebuild(first_day=day, end_day=day + dt.timedelta(days=1), meter_pks=[alice.meter.pk])
    tokens = _connect(solarpal, alice)
    sid = Subscription.objects.get().pk

    url = f"/espi/1_1/resource/Subscription/{sid}/UsagePoint/{alice.meter.pk}/MeterReading/1/IntervalBlock/{day:%Y%m%d}"
    block = validated(_get(url, tokens["access_token"]).content)

    assert block.tag == f"{ATOM}entry"
    qualities = [
        (r.findtext(f"{ESPI}ReadingQuality/{ESPI}quality"), r.findtext(f"{ESPI}value"))
        for r in block.iter(f"{ESPI}IntervalReading")
    ]
    assert [q for q in qualities if q[0] is not None] == [("8", "200")]


def test_every_resource_path_answers_valid_espi(solarpal: Any, mongo: Any) -> None:
    sol = make_consumer("sol", has_solar=True)
    day = timezone.localdate() - dt.timedelta(days=1)
    store_days(sol.meter, day, day + dt.timedelta(days=1), import_kwh=0.3, export_kwh=0.1)
    bill = make_bill(sol, period_start=(day - dt.timedelta(days=45)).replace(day=1))
    token = _connect(solarpal, sol, start=day - dt.timedelta(days=90))["access_token"]
    sid, mp = Subscription.objects.get().pk, sol.meter.pk
    base = f"/espi/1_1/resource/Subscription/{sid}"
    paths = {
        f"/espi/1_1/resource/Batch/Subscription/{sid}": "feed",
        base: "feed",
        f"{base}/UsagePoint": "feed",
        f"{base}/UsagePoint/{mp}": "entry",
        f"{base}/UsagePoint/{mp}/MeterReading": "feed",
        f"{base}/UsagePoint/{mp}/MeterReading/2": "entry",
        f"{base}/UsagePoint/{mp}/MeterReading/2/IntervalBlock": "feed",
        f"{base}/UsagePoint/{mp}/MeterReading/2/IntervalBlock/{day:%Y%m%d}": "entry",
        f"{base}/UsagePoint/{mp}/UsageSummary": "feed",
        f"{base}/UsagePoint/{mp}/UsageSummary/{bill.pk}": "entry",
        "/espi/1_1/resource/ReadingType": "feed",
        f"/espi/1_1/resource/ReadingType/{mp}-2": "entry",
        "/espi/1_1/resource/LocalTimeParameters": "feed",
        "/espi/1_1/resource/LocalTimeParameters/1": "entry",
    }
    for path, kind in paths.items():
        response = _get(path, token)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.content[:300]!r}"
        root = validated(response.content)
        assert root.tag == f"{ATOM}{kind}", path
        assert resources(root), f"{path} holds no resource"


def test_published_and_updated_filters_select_interval_blocks(solarpal: Any, mongo: Any, alice: Person) -> None:
    first = timezone.localdate() - dt.timedelta(days=4)
    store_days(alice.meter, first, first + dt.timedelta(days=3), import_kwh=0.3)
    token = _connect(solarpal, alice)["access_token"]
    url = f"/espi/1_1/resource/Subscription/{Subscription.objects.get().pk}/UsagePoint/{alice.meter.pk}/MeterReading/1/IntervalBlock"
    # A day's block is published when the day ends: the second day at this instant.
    second_day_end = local_midnight(first + dt.timedelta(days=2)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    every = validated(_get(url, token).content)
    late = validated(_get(url, token, **{"published-min": second_day_end}).content)
    early = validated(_get(url, token, **{"published-max": second_day_end}).content)
    future = validated(_get(url, token, **{"updated-min": "2100-01-01T00:00:00Z"}).content)

    def days(feed: Any) -> list[str]:
        return [str(e.findtext(f"{ATOM}title"))[-10:] for e in feed.iter(f"{ATOM}entry")]

    assert days(every) == [str(first + dt.timedelta(days=n)) for n in range(3)]
    assert days(late) == days(every)[1:]
    assert days(early) == days(every)[:1]
    assert resources(future) == []


def test_a_bad_filter_or_an_unknown_parameter_is_a_400_with_the_field(solarpal: Any, alice: Person) -> None:
    token = _connect(solarpal, alice)["access_token"]
    url = f"/espi/1_1/resource/Batch/Subscription/{Subscription.objects.get().pk}"

    bad = _get(url, token, **{"updated-min": "yesterday"})
    unknown = _get(url, token, **{"max-resluts": "5"})

    assert bad.status_code == 400 and bad.json()["error"]["field"] == "updated-min"
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "max-resluts"


def test_a_token_reads_only_its_own_subscription(solarpal: Any, mongo: Any, alice: Person, bob: Person) -> None:
    day = timezone.localdate() - dt.timedelta(days=1)
    for person in (alice, bob):
        store_days(person.meter, day, day + dt.timedelta(days=1))
    alices = _connect(solarpal, alice)["access_token"]
    _connect(solarpal, bob)
    mine = Subscription.objects.get(user=alice.user).pk
    bobs = Subscription.objects.get(user=bob.user).pk
    bm = bob.meter.pk
    foreign = [
        f"/espi/1_1/resource/Batch/Subscription/{bobs}",
        f"/espi/1_1/resource/Subscription/{bobs}/UsagePoint",
        f"/espi/1_1/resource/Subscription/{mine}/UsagePoint/{bm}",
        f"/espi/1_1/resource/Subscription/{mine}/UsagePoint/{bm}/MeterReading",
        f"/espi/1_1/resource/Subscription/{mine}/UsagePoint/{bm}/MeterReading/1/IntervalBlock",
        f"/espi/1_1/resource/Subscription/{mine}/UsagePoint/{bm}/MeterReading/1/IntervalBlock/{day:%Y%m%d}",
        f"/espi/1_1/resource/Subscription/{mine}/UsagePoint/{bm}/UsageSummary",
        f"/espi/1_1/resource/ReadingType/{bm}-1",
    ]
    for url in foreign:
        response = _get(url, alices)
        assert response.status_code == 404, f"{url}: {response.status_code}"
        assert response.json()["error"]["code"] == "not_found"
        assert bob.meter.serial not in response.content.decode()
    batch = _get(f"/espi/1_1/resource/Batch/Subscription/{mine}", alices).content.decode()
    assert alice.meter.serial in batch and bob.meter.serial not in batch


def test_function_blocks_not_granted_are_refused(solarpal: Any, alice: Person) -> None:
    summary_only = _connect(solarpal, alice, scope=SUMMARY_SCOPE)["access_token"]
    sid = Subscription.objects.get().pk
    response = _get(f"/espi/1_1/resource/Subscription/{sid}/UsagePoint/{alice.meter.pk}/MeterReading", summary_only)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "MeterReading" not in resources(
        validated(_get(f"/espi/1_1/resource/Batch/Subscription/{sid}", summary_only).content)
    )


def test_usage_summaries_carry_no_cost_without_function_block_16(solarpal: Any, alice: Person) -> None:
    make_bill(alice, period_start=(timezone.localdate() - dt.timedelta(days=40)).replace(day=1))
    token = _connect(solarpal, alice, scope=SUMMARY_SCOPE)["access_token"]
    sid = Subscription.objects.get().pk
    root = validated(
        _get(f"/espi/1_1/resource/Subscription/{sid}/UsagePoint/{alice.meter.pk}/UsageSummary", token).content
    )
    summaries = list(root.iter(f"{ESPI}UsageSummary"))
    assert len(summaries) == 1
    assert summaries[0].find(f"{ESPI}billLastPeriod") is None
    assert summaries[0].findtext(f"{ESPI}overallConsumptionLastPeriod/{ESPI}value") == "130000"


def test_days_before_the_consumer_moved_in_are_never_shared(solarpal: Any, mongo: Any) -> None:
    today = timezone.localdate()
    newcomer = make_consumer("nina", move_in=today - dt.timedelta(days=2))
    store_days(newcomer.meter, today - dt.timedelta(days=5), today)
    token = _connect(solarpal, newcomer, scope=INTERVALS_SCOPE)["access_token"]
    sid = Subscription.objects.get().pk

    root = validated(_get(f"/espi/1_1/resource/Batch/Subscription/{sid}", token).content)

    days = [
        e.findtext(f"{ATOM}title")[-10:]
        for e in root.iter(f"{ATOM}entry")
        if e.find(f"{ATOM}content/{ESPI}IntervalBlock") is not None
    ]
    assert days == [str(today - dt.timedelta(days=2)), str(today - dt.timedelta(days=1))]


def test_a_start_before_the_history_asked_for_is_refused_on_the_page(solarpal: Any, alice: Person) -> None:
    client = Client()
    client.force_login(alice.user)
    pkce = Pkce.new()
    page = client.get(
        f"/oauth/authorize/?{authorize_query(client_id=solarpal.application.client_id, redirect_uri=REDIRECT, pkce=pkce)}"
    )
    form = page.context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("meters", "start_date", "end_date")}
    data |= {"meters": [alice.meter.pk], "start_date": "2001-01-01", "allow": "Authorize"}

    response = client.post("/oauth/authorize/", data)

    assert response.status_code == 200
    assert "asked for data from" in response.content.decode()
    assert not Subscription.objects.exists()


def test_refresh_gives_a_new_token_and_the_old_refresh_token_is_spent(solarpal: Any, alice: Person) -> None:
    tokens = _connect(solarpal, alice)
    assert 0 < tokens["expires_in"] <= 3600
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}

    renewed = Client().post("/oauth/token/", refresh, HTTP_AUTHORIZATION=_basic(solarpal))
    replayed = Client().post("/oauth/token/", refresh, HTTP_AUTHORIZATION=_basic(solarpal))

    assert renewed.status_code == 200
    assert renewed.json()["access_token"] != tokens["access_token"]
    assert renewed.json()["resourceURI"].endswith(f"/Batch/Subscription/{Subscription.objects.get().pk}")
    assert replayed.status_code == 400
    sid = Subscription.objects.get().pk
    assert _get(f"/espi/1_1/resource/Subscription/{sid}", renewed.json()["access_token"]).status_code in (200, 401)


def test_an_expired_token_is_refused_with_401(solarpal: Any, alice: Person) -> None:
    tokens = _connect(solarpal, alice)
    AccessToken.objects.update(expires=timezone.now() - dt.timedelta(seconds=1))
    response = _get(f"/espi/1_1/resource/Subscription/{Subscription.objects.get().pk}", tokens["access_token"])
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "authentication_failed"


def test_revoking_in_the_portal_stops_every_token_at_once(solarpal: Any, alice: Person) -> None:
    tokens = _connect(solarpal, alice)
    sid = Subscription.objects.get().pk
    url = f"/espi/1_1/resource/Subscription/{sid}"
    assert _get(url, tokens["access_token"]).status_code == 200
    client = Client()
    client.force_login(alice.user)
    assert f'data-subscription="{sid}"' in client.get("/connections/").content.decode()

    client.post(f"/connections/{sid}/revoke/")

    assert _get(url, tokens["access_token"]).status_code == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert Client().post("/oauth/token/", refresh, HTTP_AUTHORIZATION=_basic(solarpal)).status_code == 400
    assert not AccessToken.objects.exists() and not RefreshToken.objects.exists()
    assert f'data-subscription="{sid}"' not in client.get("/connections/").content.decode()


def test_a_consumer_cannot_revoke_another_consumers_connection(solarpal: Any, alice: Person, bob: Person) -> None:
    _connect(solarpal, bob)
    client = Client()
    client.force_login(alice.user)
    response = client.post(f"/connections/{Subscription.objects.get().pk}/revoke/")
    assert response.status_code == 404
    assert Subscription.objects.get().revoked_at is None


def test_consenting_again_keeps_one_subscription_with_the_new_terms(solarpal: Any, alice: Person) -> None:
    _connect(solarpal, alice)
    first = Subscription.objects.get()
    later = first.start_date + dt.timedelta(days=10)
    _connect(solarpal, alice, start=later)
    again = Subscription.objects.get()
    assert again.pk == first.pk and again.start_date == later


def test_the_oauth2_revocation_endpoint_revokes_a_token(solarpal: Any, alice: Person) -> None:
    tokens = _connect(solarpal, alice)
    response = Client().post(
        "/oauth/revoke_token/", {"token": tokens["access_token"]}, HTTP_AUTHORIZATION=_basic(solarpal)
    )
    assert response.status_code == 200
    assert (
        _get(f"/espi/1_1/resource/Subscription/{Subscription.objects.get().pk}", tokens["access_token"]).status_code
        == 401
    )


def test_staff_have_nothing_to_share_and_cannot_consent(solarpal: Any, olivia: Any, alice: Person) -> None:
    client = Client()
    client.force_login(olivia)  # an operator sees every meter, but none is theirs to give away
    query = authorize_query(client_id=solarpal.application.client_id, redirect_uri=REDIRECT, pkce=Pkce.new())
    page = client.get(f"/oauth/authorize/?{query}")
    assert "You have no meter to share" in page.content.decode()
    assert alice.meter.serial not in page.content.decode()
    data = {
        k: v
        for k, v in page.context["form"].initial.items()
        if v is not None and k not in ("meters", "start_date", "end_date")
    }
    data |= {"meters": [alice.meter.pk], "start_date": str(timezone.localdate()), "allow": "Authorize"}

    response = client.post("/oauth/authorize/", data)

    assert response.status_code == 200  # the form again, with the meter refused
    assert not Subscription.objects.exists()


def test_a_plain_pkce_challenge_is_refused(solarpal: Any, alice: Person) -> None:
    pkce = Pkce.new()
    client = Client()
    client.force_login(alice.user)
    query = authorize_query(client_id=solarpal.application.client_id, redirect_uri=REDIRECT, pkce=pkce)
    page = client.get(f"/oauth/authorize/?{query.replace('S256', 'plain')}")
    if page.status_code == 302:  # refused at once, back to the application
        assert "error=" in page["Location"] and "code=" not in page["Location"]
        return
    form = page.context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("meters", "start_date", "end_date")}
    data |= {"meters": [alice.meter.pk], "start_date": str(form.initial["start_date"]), "allow": "Authorize"}

    response = client.post("/oauth/authorize/", data)

    assert response.status_code == 302
    assert "error=invalid_request" in response["Location"] and "code=" not in response["Location"]
