"""What a third-party application does, as test helpers: PKCE, the authorize URL, the schemas' check."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from lxml import etree

from greenbutton.scopes import OFFERED

# The Alliance's usage.xsd and atom.xsd (and a local xml.xsd), as the Download My Data test uses them.
SCHEMAS = Path(__file__).resolve().parents[2] / "portal" / "tests" / "greenbutton"
ATOM = "{http://www.w3.org/2005/Atom}"
ESPI = "{http://naesb.org/espi}"
FULL_SCOPE = OFFERED[0].text  # intervals, export, usage summaries with cost
INTERVALS_SCOPE = OFFERED[1].text  # intervals only
SUMMARY_SCOPE = OFFERED[2].text  # usage summaries without cost


@functools.lru_cache(maxsize=1)
def usage_schema() -> etree.XMLSchema:
    # usage.xsd imports atom.xsd (which imports xml.xsd) from that folder: one schema checks both.
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "usage.xsd")))


def validated(body: bytes) -> etree._Element:
    """The document, after checking it (feed or entry) and every ESPI resource in it against the schemas."""
    root = etree.fromstring(body)
    schema = usage_schema()
    schema.assertValid(root)
    for content in root.iter(f"{ATOM}content"):
        assert len(content) == 1, "one ESPI resource per entry"
        schema.assertValid(etree.ElementTree(content[0]))
    return root


def resources(root: etree._Element) -> list[str]:
    """The ESPI resource kinds in a document, in order."""
    return [etree.QName(content[0]).localname for content in root.iter(f"{ATOM}content")]


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(64)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def authorize_query(
    *, client_id: str, redirect_uri: str, pkce: Pkce | None, scope: str = FULL_SCOPE, state: str = "xyz"
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
    }
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    return urlencode(params)


def connected(
    person: Any, application: Any, *, scope: str = FULL_SCOPE, start: dt.date | None = None
) -> tuple[Any, str]:
    """A subscription of the person's to the application and a valid access token for it, without the
    browser flow (test_connect_browser.py drives that): (subscription, raw token)."""
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, set_token_value

    from greenbutton.services import subscription_grant

    subscription = subscription_grant(
        user=person.user,
        application=application,
        scope=scope,
        meters=[person.meter],
        start_date=start or timezone.localdate() - dt.timedelta(days=60),
        end_date=None,
    )
    raw = secrets.token_urlsafe(30)
    token = AccessToken(
        user=person.user, application=application, scope=scope, expires=timezone.now() + dt.timedelta(hours=1)
    )
    set_token_value(token, raw)
    token.save()
    return subscription, raw
