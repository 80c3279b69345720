"""Green Button Connect's settings: token lifetimes from the environment, a bad one named at start."""

from __future__ import annotations

import pytest
from django.conf import settings

from mdms.core.testing import start_django_with


def test_pkce_is_required_and_tokens_are_short_lived_by_default() -> None:
    provider = settings.OAUTH2_PROVIDER
    assert provider["PKCE_REQUIRED"] is True
    assert provider["COMPLIANT_BCP_RFC9700_PKCE_METHOD"] is True  # S256 only
    assert provider["ACCESS_TOKEN_EXPIRE_SECONDS"] == 3600
    assert provider["ROTATE_REFRESH_TOKEN"] is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [("GREENBUTTON_ACCESS_TOKEN_SECONDS", "an hour"), ("GREENBUTTON_REFRESH_TOKEN_SECONDS", "10")],
)
def test_a_bad_token_lifetime_fails_at_start_with_its_name(variable: str, value: str) -> None:
    result = start_django_with({variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr
