"""Staff register third-party applications: the command prints the secret once and keeps its hash."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from oauth2_provider.models import Application

pytestmark = pytest.mark.django_db


def test_the_command_registers_a_confidential_code_flow_client_and_shows_the_secret_once() -> None:
    out = StringIO()
    call_command("greenbutton_register_app", "SolarPal", "--redirect-uri", "https://solarpal.example/cb", stdout=out)

    lines = dict(line.split(":", 1) for line in out.getvalue().splitlines() if line.startswith("client_"))
    app = Application.objects.get(client_id=lines["client_id"].strip())
    assert app.name == "SolarPal" and app.redirect_uris == "https://solarpal.example/cb"
    assert app.client_type == Application.CLIENT_CONFIDENTIAL
    assert app.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
    assert lines["client_secret"].strip() not in app.client_secret  # only a hash is stored
    assert "FB=" in out.getvalue()


def test_a_redirect_uri_with_a_fragment_is_refused_by_name() -> None:
    with pytest.raises(CommandError, match="redirect_uris"):
        call_command(
            "greenbutton_register_app", "Bad", "--redirect-uri", "https://x.example/cb#frag", stdout=StringIO()
        )
    assert not Application.objects.exists()


def test_the_nightly_job_deletes_expired_tokens_and_keeps_live_ones() -> None:
    import datetime as dt

    from django.utils import timezone
    from oauth2_provider.models import AccessToken, set_token_value

    from greenbutton.services import application_register
    from greenbutton.tasks import clear_expired_tokens
    from mdms.core.testing import make_consumer

    alice = make_consumer("alice")
    app = application_register(name="SolarPal", redirect_uris=["https://solarpal.example/cb"]).application
    for name, expires in [
        ("old", timezone.now() - dt.timedelta(days=1)),
        ("live", timezone.now() + dt.timedelta(hours=1)),
    ]:
        token = AccessToken(user=alice.user, application=app, scope="x", expires=expires)
        set_token_value(token, name)
        token.save()

    clear_expired_tokens()
    clear_expired_tokens()

    assert AccessToken.objects.count() == 1
    assert AccessToken.objects.get().expires > timezone.now()
