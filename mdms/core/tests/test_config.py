"""A bad configuration value fails at start and names its variable."""

from __future__ import annotations

import os

import pytest

from mdms import config
from mdms.core.testing import start_django_with


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TIME_ZONE", "Mars/Olympus_Mons"),
        ("DATABASE_URL", "mysql://root@localhost/mdms"),
        ("DATABASE_URL", "postgres://u@localhost:notaport/mdms"),
        ("MQTT_PORT", "eighteen"),
        ("DJANGO_DEBUG", "perhaps"),
        ("MONGODB_URI", "http://127.0.0.1:27017/mdms"),
        ("INGEST_SHARE_GROUP", "ingest/a"),
        ("INGEST_SHARE_GROUP", "in#gest"),
        ("REBILL_PROPOSAL_MIN_KWH", "-1"),
        ("REBILL_PROPOSAL_MIN_AMOUNT", "ten"),
        ("REBILL_PROPOSAL_RULE", "sometimes"),
    ],
)
def test_a_bad_value_fails_at_start_with_the_variable_name(variable: str, value: str) -> None:
    result = start_django_with({variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = start_django_with({"DJANGO_DEBUG": "false", "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_the_default_time_zone_observes_daylight_saving_time() -> None:
    import datetime as dt
    import zoneinfo

    zone = zoneinfo.ZoneInfo(config.DEFAULT_TIME_ZONE)
    winter = dt.datetime(2026, 1, 15, 12, tzinfo=zone).utcoffset()
    summer = dt.datetime(2026, 7, 15, 12, tzinfo=zone).utcoffset()
    assert winter != summer


def test_database_url_is_taken_apart() -> None:
    os.environ["MDMS_TEST_DB_URL"] = "postgres://meter%40ops:s3cret@db.example:6543/mdms?sslmode=require"
    try:
        url = config.parse_database_url("MDMS_TEST_DB_URL", config.DEFAULT_DATABASE_URL)
    finally:
        del os.environ["MDMS_TEST_DB_URL"]
    assert (url.user, url.password, url.host, url.port, url.name) == ("meter@ops", "s3cret", "db.example", 6543, "mdms")
    assert url.options == {"sslmode": "require"}
