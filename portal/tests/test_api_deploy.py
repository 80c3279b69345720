"""Production settings pass Django's deployment checks (schema warnings included)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from mdms.config import BASE_DIR

TEST_ONLY_VARIABLES = {"DJANGO_SECURE", "DJANGO_ALLOW_ASYNC_UNSAFE", "MDMS_TEST_SUFFIX"}


def _check_deploy(**overrides: str) -> subprocess.CompletedProcess[str]:
    # Production as the environment defines it: HTTPS follows from DEBUG being off, not set by hand,
    # and nothing the test process set for itself (the browser tests allow async-unsafe calls).
    inherited = {name: value for name, value in os.environ.items() if name not in TEST_ONLY_VARIABLES}
    environment = {
        **inherited,
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "mdms.example.org",
        "CSRF_TRUSTED_ORIGINS": "https://mdms.example.org",
        "MQTT_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MQTT_INGEST_PASSWORD": secrets.token_urlsafe(18),
        **overrides,
    }
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120)


def test_production_settings_pass_check_deploy() -> None:
    result = _check_deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_https_settings() -> None:
    # The check really runs against these settings: switching HTTPS off makes it fail.
    result = _check_deploy(DJANGO_SECURE="false")
    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT" in result.stderr + result.stdout
