"""Configuration read from the environment, in one place.

Both the Django settings and the service manager (`scripts/services.py`, which runs before Django
is configured) read the same variables through this module, so a default never differs between
them. Defaults serve local development; production sets every variable (see README).

A bad value raises ``ImproperlyConfigured``-like ``ConfigError`` naming the variable, at start.
"""

from __future__ import annotations

import os
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MDMS_VAR_DIR", BASE_DIR / "var"))

# Secrets the service manager generates on first start for local development (MQTT admin and
# ingest passwords). Production passes them in the environment and never has this file.
DEV_SECRETS_FILE = VAR_DIR / "secrets.env"


class ConfigError(Exception):
    """A configuration variable is missing or malformed."""


def _dev_secrets() -> dict[str, str]:
    if not DEV_SECRETS_FILE.exists():
        return {}
    values: dict[str, str] = {}
    for line in DEV_SECRETS_FILE.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        value = _dev_secrets().get(name, default)
    if value is None:
        raise ConfigError(f"{name} is not set")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = env(name, "true" if default else "false").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, not {value}")
    return value


def env_float(
    name: str,
    default: float,
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
) -> float:
    """A number; `above` (exclusive), `at_least` and `at_most` (inclusive) bound it, and NaN is refused with them."""
    raw = env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if above is not None and not value > above:
        raise ConfigError(f"{name} must be above {above:g}, not {value:g}")
    if at_least is not None and not value >= at_least:
        raise ConfigError(f"{name} must be at least {at_least:g}, not {value:g}")
    if at_most is not None and not value <= at_most:
        raise ConfigError(f"{name} must be at most {at_most:g}, not {value:g}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env(name, default).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def env_time_zone(name: str, default: str) -> str:
    value = env(name, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name} must be an IANA time zone such as Europe/Paris, not {value!r}") from None
    return value


def env_share_group(name: str, default: str) -> str:
    """An MQTT shared-subscription group name (one topic level), or "" for none."""
    value = env(name, default).strip()
    if any(ch in value for ch in "/+#") or any(ch.isspace() for ch in value):
        raise ConfigError(f"{name} must be one MQTT topic level (no '/', '+', '#' or spaces), not {value!r}")
    return value


@dataclass(frozen=True)
class DatabaseURL:
    """A postgres:// URL taken apart."""

    host: str
    port: int
    name: str
    user: str
    password: str
    options: dict[str, str]

    def django(self) -> dict[str, object]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": self.host,
            "PORT": str(self.port),
            "NAME": self.name,
            "USER": self.user,
            "PASSWORD": self.password,
            "OPTIONS": dict(self.options),
            # Persistent connections: the ingest path and the portal reuse them across requests.
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }


def parse_database_url(name: str, default: str) -> DatabaseURL:
    raw = env(name, default)
    parts = urlsplit(raw)
    if parts.scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
        raise ConfigError(f"{name} must be a postgres:// URL, not {raw!r}")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigError(f"{name} has a bad port: {raw!r}") from None
    db_name = parts.path.lstrip("/")
    if not db_name:
        raise ConfigError(f"{name} must name a database, as in postgres://user@host:5432/mdms")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return DatabaseURL(
        host=parts.hostname or "127.0.0.1",
        port=port,
        name=db_name,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        options=options,
    )


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int


def parse_host_port(name: str, default: str, scheme: str) -> HostPort:
    raw = env(name, default)
    parts = urlsplit(raw)
    if parts.scheme != scheme:
        raise ConfigError(f"{name} must be a {scheme}:// URL, not {raw!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name} has a bad port: {raw!r}") from None
    return HostPort(host=parts.hostname or "127.0.0.1", port=port or 0)


# The daily bill-cycle run starts at this local hour (mdms.schedule); billing fetches missing reads
# BILLING_FETCH_LEAD_S before it.
BILL_RUN_HOUR = 8

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/mdms"
DEFAULT_MONGODB_URI = "mongodb://127.0.0.1:27017/mdms?replicaSet=rs0"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# 1884, not 1883: a shared machine may already run an anonymous broker on the standard port,
# and the MDMS always needs its own broker with authentication and per-meter ACLs.
DEFAULT_MQTT_PORT = 1884
# Where the service manager records the port its own broker listens on, when 1884 was taken by
# a broker that is not this checkout's (another clone of the project on the same machine).
MQTT_PORT_FILE = VAR_DIR / "run" / "mosquitto.port"


def default_mqtt_port() -> int:
    try:
        return int(MQTT_PORT_FILE.read_text())
    except (OSError, ValueError):
        return DEFAULT_MQTT_PORT


# The broker's TLS listener for meters with client certificates (docs/mqtt-tls.md). 8884 beside
# 1884; when another checkout's broker holds it, the service manager records the one it took.
DEFAULT_MQTT_TLS_PORT = 8884
MQTT_TLS_PORT_FILE = VAR_DIR / "run" / "mosquitto-tls.port"
# The development meter CA, made on first use (mdms.core.mqtt.certificates); production names its own.
DEV_METER_CA_DIR = VAR_DIR / "mqtt-ca"


def default_mqtt_tls_port() -> int:
    try:
        return int(MQTT_TLS_PORT_FILE.read_text())
    except (OSError, ValueError):
        return DEFAULT_MQTT_TLS_PORT


@dataclass(frozen=True)
class MeterCA:
    """Where the meter CA, its CRL and the broker's TLS files are, and whether the CA may be created."""

    cert_file: str
    key_file: str
    crl_file: str
    create: bool


def meter_ca(*, debug: bool) -> MeterCA:
    """MQTT_METER_CA_CERT_FILE and MQTT_METER_CA_KEY_FILE (both or neither), MQTT_METER_CRL_FILE.

    Unset in development: a CA under var/mqtt-ca/, created on first use. Unset in production: no
    CA (issuing a certificate says which variables to set); a CA key never has a production default.
    """
    cert = env("MQTT_METER_CA_CERT_FILE", "")
    key = env("MQTT_METER_CA_KEY_FILE", "")
    if bool(cert) != bool(key):
        missing = "MQTT_METER_CA_KEY_FILE" if cert else "MQTT_METER_CA_CERT_FILE"
        raise ConfigError(f"{missing} must be set too: the meter CA needs its certificate and its key")
    if cert:
        return MeterCA(cert, key, env("MQTT_METER_CRL_FILE", str(Path(cert).with_name("crl.pem"))), create=False)
    if not debug:
        return MeterCA("", "", env("MQTT_METER_CRL_FILE", ""), create=False)
    return MeterCA(
        str(DEV_METER_CA_DIR / "ca.crt"),
        str(DEV_METER_CA_DIR / "ca.key"),
        env("MQTT_METER_CRL_FILE", str(DEV_METER_CA_DIR / "crl.pem")),
        create=True,
    )


# A DST-observing zone by default, because utilities bill in local time and the hard cases
# (23- and 25-hour days) must be exercised from day one.
DEFAULT_TIME_ZONE = "Europe/Paris"


def env_redis_url(name: str, default: str) -> str:
    raw = env(name, default)
    if urlsplit(raw).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"{name} must be a redis:// URL, not {raw!r}")
    return raw


def env_mongodb_uri(name: str, default: str) -> str:
    raw = env(name, default)
    if urlsplit(raw).scheme not in {"mongodb", "mongodb+srv"}:
        raise ConfigError(f"{name} must be a mongodb:// URL, not {raw!r}")
    return raw


def mongodb_database_name(uri: str) -> str:
    path = urlsplit(uri).path.lstrip("/")
    return path or "mdms"
