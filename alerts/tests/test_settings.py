"""E-mail settings: files under var/mail by default (no mail server needed), SMTP when a host is set,
and a bad value fails at start naming its variable. The beat job is scheduled and does the whole round."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from alerts import services, tasks
from alerts.models import Notification
from alerts.tests.helpers import local, store
from mdms.core.testing import Person


def _settings_with(env: dict[str, str], show: str = "EMAIL_BACKEND") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print(settings.{show})",
        ],
        env={**clean, "DJANGO_SETTINGS_MODULE": "mdms.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_mail_server_e_mails_are_written_to_files() -> None:
    result = _settings_with({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.core.mail.backends.filebased.EmailBackend"


def test_a_mail_host_means_smtp() -> None:
    result = _settings_with({"EMAIL_HOST": "smtp.example.org"})
    assert result.stdout.strip() == "django.core.mail.backends.smtp.EmailBackend"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"EMAIL_BACKEND": "pigeon"}, "EMAIL_BACKEND"),
        ({"EMAIL_BACKEND": "smtp"}, "EMAIL_HOST"),
        ({"EMAIL_HOST": "smtp.example.org", "EMAIL_PORT": "none"}, "EMAIL_PORT"),
        ({"EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"}, "EMAIL_USE_SSL"),
        ({"EMAIL_USE_TLS": "maybe"}, "EMAIL_USE_TLS"),
        ({"DEFAULT_FROM_EMAIL": "nobody"}, "DEFAULT_FROM_EMAIL"),
        ({"PORTAL_BASE_URL": "portal.example.org"}, "PORTAL_BASE_URL"),
    ],
)
def test_a_bad_e_mail_setting_fails_at_start_with_its_name(env: dict[str, str], variable: str) -> None:
    result = _settings_with(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr


def test_the_beat_job_runs_every_five_minutes() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["alerts-evaluate-rules"]
    assert (entry["task"], entry["schedule"]) == ("alerts.evaluate_rules", 300.0)


@pytest.mark.django_db
def test_the_beat_job_judges_and_e_mails(alice: Person, mongo: Any) -> None:
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    services.rule_create(
        user=alice.user, meter=alice.meter, kind="daily_kwh", threshold=Decimal("1"), minutes=None,
        now=local(yesterday),
    )  # fmt: skip
    store(alice.meter.pk, local(yesterday, 12), local(yesterday, 15))  # 3 kWh yesterday
    assert tasks.evaluate_rules() == {
        "rules": 1, "notifications": 1, "errors": 0, "emails_sent": 1, "emails_failed": 0
    }  # fmt: skip
    assert tasks.evaluate_rules()["notifications"] == 0
    assert Notification.objects.count() == 1 and len(mail.outbox) == 1
