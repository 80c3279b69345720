"""Data hub settings: a bad value fails at start naming its variable; the daily job is scheduled."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from celery.schedules import crontab
from django.conf import settings

from mdms.core.testing import start_django_with


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATAHUB_PULL_HOUR", "25"),
        ("DATAHUB_PULL_HOUR", "seven"),
        ("DATAHUB_TIMEOUT_S", "-1"),
        ("DATAHUB_MIN_INTERVAL_S", "soon"),
        ("DATAHUB_MAX_ATTEMPTS", "0"),
        ("DATAHUB_CATCHUP_DAYS", "0"),
    ],
)
def test_a_bad_data_hub_setting_fails_at_start_with_its_name(variable: str, value: str) -> None:
    result = start_django_with({variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr


def test_the_daily_pull_is_scheduled_at_seven_local_time_by_default() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["ingest-datahub-pull-yesterday"]
    assert entry["task"] == "ingest.datahub_pull_yesterday"
    assert entry["schedule"] == crontab(hour=7, minute=0)


def test_the_pull_hour_follows_the_environment() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.CELERY_BEAT_SCHEDULE['ingest-datahub-pull-yesterday']['schedule'].hour)",
        ],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "mdms.settings", "DATAHUB_PULL_HOUR": "6"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{6}"
