"""Green Button Connect as a third-party application lives it: staff register the app in the admin,
the consumer consents in Chromium, the app's own HTTP server receives the code, and the app exchanges
it (with PKCE), fetches and validates every document, refreshes, and is cut off by a revocation.

Everything runs over real HTTP: Django's live server, Chromium, a callback server on loopback, and
`requests` for the app's back-channel calls.
"""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.utils import timezone

from greenbutton.tests.connect import ATOM, FULL_SCOPE, Pkce, authorize_query, resources, validated
from mdms.core.testing import make_consumer
from portal.tests.conftest import log_in, screenshot
from portal.tests.usage_data import make_bill, store_days

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]


class _Callback(http.server.BaseHTTPRequestHandler):
    """The third party's redirect endpoint: keeps the query it was called with."""

    received: list[dict[str, list[str]]]

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/callback":  # not the browser's /favicon.ico
            self.received.append(parse_qs(url.query))
        body = b"<html><body><h1 id='done'>SolarPal is connected</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def callback_server() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    received: list[dict[str, list[str]]] = []
    handler = type("Handler", (_Callback,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/callback", received
    server.shutdown()
    server.server_close()


def _register_in_the_admin(page: Any, base: str, redirect_uri: str) -> tuple[str, str]:
    """Staff add the application in the admin; the secret is read from the form before it is hashed."""
    User.objects.create_superuser("ada", "ada@utility.example", "ada-pw")
    page.goto(f"{base}/admin/login/?next=/admin/oauth2_provider/application/add/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "ada-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#application_form")
    client_id = page.input_value("input[name=client_id]")
    client_secret = page.input_value("input[name=client_secret]")
    page.fill("input[name=name]", "SolarPal")
    page.fill("textarea[name=redirect_uris]", redirect_uri)
    page.check("input[name=client_type][value=confidential]")
    page.check("input[name=authorization_grant_type][value=authorization-code]")
    page.click("input[name=_save]")
    page.wait_for_selector("text=was added successfully")
    page.context.clear_cookies()  # the staff session ends; the consumer logs in next
    return client_id, client_secret


def test_a_third_party_app_connects_reads_refreshes_and_is_revoked(
    live_server: Any, browser_page: Any, callback_server: Any, mongo: Any
) -> None:
    base = live_server.url
    redirect_uri, received = callback_server
    sol = make_consumer("sol", has_solar=True)
    today = timezone.localdate()
    store_days(sol.meter, today - dt.timedelta(days=2), today, import_kwh=0.3, export_kwh=0.1)
    make_bill(sol, period_start=(today - dt.timedelta(days=40)).replace(day=1))
    page = browser_page

    client_id, client_secret = _register_in_the_admin(page, base, redirect_uri)

    # The app sends the consumer to the authorization endpoint; they log in and consent.
    pkce = Pkce.new()
    query = authorize_query(client_id=client_id, redirect_uri=redirect_uri, pkce=pkce, scope=FULL_SCOPE, state="s-42")
    page.goto(f"{base}/oauth/authorize/?{query}")
    page.wait_for_selector("input[name=username]")
    page.fill("input[name=username]", "sol")
    page.fill("input[name=password]", "sol-pw")
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_selector("#consent-form")
    assert page.text_content("#application-name") == "SolarPal"
    assert sol.meter.serial in (page.text_content("#consent") or "")
    assert "15 minutes" in (page.text_content("#interval-length") or "")
    assert "Usage summary with cost" in (page.text_content("#function-blocks") or "")
    assert page.is_checked(f"input[name=meters][value='{sol.meter.pk}']")
    page.fill("input[name=start_date]", str(today - dt.timedelta(days=90)))
    screenshot(page, "greenbutton-consent")
    page.click("#allow")
    page.wait_for_selector("#done")

    assert len(received) == 1 and received[0]["state"] == ["s-42"]
    assert received[0]["iss"] == [base]  # RFC 9207: the app can tell which server answered
    code = received[0]["code"][0]

    # The app's back channel: exchange the code with the PKCE verifier.
    app = requests.Session()
    app.auth = (client_id, client_secret)
    token_url = f"{base}/oauth/token/"
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    assert app.post(token_url, data=grant, timeout=30).status_code == 400  # no verifier, no token
    exchanged = app.post(token_url, data={**grant, "code_verifier": pkce.verifier}, timeout=30)
    assert exchanged.status_code == 200, exchanged.text
    tokens = exchanged.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] <= 3600
    batch_url = tokens["resourceURI"]
    assert batch_url.startswith(f"{base}/espi/1_1/resource/Batch/Subscription/")

    def fetch(url: str, token: str) -> requests.Response:
        return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    batch = fetch(batch_url, tokens["access_token"])
    assert batch.status_code == 200 and batch.headers["Content-Type"] == "application/atom+xml"
    feed = validated(batch.content)
    kinds = resources(feed)
    assert {"UsagePoint", "LocalTimeParameters", "MeterReading", "ReadingType", "IntervalBlock", "UsageSummary"} <= set(
        kinds
    )
    assert kinds.count("IntervalBlock") == 4  # two days, import and export

    # Every entry's own link answers the same resource, valid on its own.
    documents = 1
    for entry in feed.iter(f"{ATOM}entry"):
        href = entry.find(f"{ATOM}link[@rel='self']").get("href")
        one = fetch(f"{base}{href}", tokens["access_token"])
        assert one.status_code == 200, f"{href}: {one.status_code}"
        single = validated(one.content)
        assert single.findtext(f"{ATOM}id") == entry.findtext(f"{ATOM}id")
        documents += 1
    assert documents == len(kinds) + 1

    # Refresh: a new access token; the spent refresh token is refused.
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    renewed = app.post(token_url, data=refresh, timeout=30)
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert fresh["access_token"] != tokens["access_token"]
    assert fetch(batch_url, fresh["access_token"]).status_code == 200
    assert app.post(token_url, data=refresh, timeout=30).status_code == 400

    # The consumer revokes in the portal; the app is cut off at once.
    page.goto(f"{base}/connections/")
    row = page.locator("#connections tr[data-subscription]")
    assert row.count() == 1 and "SolarPal" in (row.text_content() or "")
    screenshot(page, "greenbutton-connections")
    row.locator("button:has-text('Revoke')").click()
    page.wait_for_selector("text=can no longer read your data")
    assert page.locator("#connections tr[data-subscription]").count() == 0

    refused = fetch(batch_url, fresh["access_token"])
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert app.post(token_url, data={**refresh, "refresh_token": fresh["refresh_token"]}, timeout=30).status_code == 400


def test_a_consumer_who_logs_in_and_refuses_is_sent_back_with_access_denied(
    live_server: Any, browser_page: Any, callback_server: Any
) -> None:
    from greenbutton.services import application_register

    redirect_uri, received = callback_server
    make_consumer("sol")
    registered = application_register(name="SolarPal", redirect_uris=[redirect_uri])
    log_in(browser_page, live_server.url, "sol", "sol-pw")
    query = authorize_query(client_id=registered.application.client_id, redirect_uri=redirect_uri, pkce=Pkce.new())

    browser_page.goto(f"{live_server.url}/oauth/authorize/?{query}")
    browser_page.click("#deny")
    browser_page.wait_for_selector("#done")

    assert len(received) == 1
    assert received[0]["error"] == ["access_denied"] and received[0]["state"] == ["xyz"]
    assert "code" not in received[0]
