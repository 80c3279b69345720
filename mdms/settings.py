"""The one settings module, driven by environment variables (see the README's configuration table).

Defaults serve local development (`make run`, `make test`); production differs only by
environment. A bad value raises ImproperlyConfigured naming the variable.
"""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from mdms import config
from mdms.config import BASE_DIR, VAR_DIR


def config_rate(name: str, default: str) -> str:
    """A DRF throttle rate such as "600/min" from the environment."""
    value = config.env(name, default)
    count, _, period = value.partition("/")
    if not count.isdigit() or period not in ("s", "sec", "m", "min", "h", "hour", "d", "day"):
        raise ImproperlyConfigured(f"{name} must look like 600/min, not {value!r}")
    return value


def config_seconds(name: str, default: float) -> float:
    """A duration in seconds from the environment: positive, and at most a day."""
    return config.env_float(name, default, above=0, at_most=86_400)


def _share(name: str, default: float) -> float:
    """A share of a rating: above 0, at most 2 (200%)."""
    return config.env_float(name, default, above=0, at_most=2)


def _read() -> dict[str, object]:
    """Read every variable once, turning ConfigError into Django's ImproperlyConfigured."""
    try:
        debug = config.env_bool("DJANGO_DEBUG", True)
        secret_key = config.env("SECRET_KEY", "dev-only-insecure-secret-key-change-me" if debug else None)
        return {
            "debug": debug,
            "secret_key": secret_key,
            "allowed_hosts": [h.strip() for h in config.env("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h],
            "database": config.parse_database_url("DATABASE_URL", config.DEFAULT_DATABASE_URL),
            "mongodb_uri": config.env_mongodb_uri("MONGODB_URI", config.DEFAULT_MONGODB_URI),
            "redis_url": config.env_redis_url("REDIS_URL", config.DEFAULT_REDIS_URL),
            "mqtt_host": config.env("MQTT_HOST", "127.0.0.1"),
            "mqtt_port": config.env_int("MQTT_PORT", config.default_mqtt_port(), minimum=1),
            "mqtt_tls": config.env_bool("MQTT_TLS", False),
            "mqtt_ca_file": config.env("MQTT_CA_FILE", ""),
            "mqtt_tls_port": config.env_int("MQTT_TLS_PORT", config.default_mqtt_tls_port(), minimum=1),
            "meter_ca": config.meter_ca(debug=debug),
            "mqtt_meter_cert_days": config.env_int("MQTT_METER_CERT_DAYS", 3650, minimum=1, maximum=36500),
            "mqtt_broker_pid_file": config.env(
                "MQTT_BROKER_PID_FILE", str(VAR_DIR / "run" / "mosquitto.pid") if debug else ""
            ),
            "mqtt_admin_username": config.env("MQTT_ADMIN_USERNAME", "mdms-admin"),
            "mqtt_admin_password": config.env("MQTT_ADMIN_PASSWORD", "" if debug else None),
            "mqtt_ingest_username": config.env("MQTT_INGEST_USERNAME", "mdms-ingest"),
            "mqtt_ingest_password": config.env("MQTT_INGEST_PASSWORD", "" if debug else None),
            "ingest_share_group": config.env_share_group("INGEST_SHARE_GROUP", ""),
            "time_zone": config.env_time_zone("TIME_ZONE", config.DEFAULT_TIME_ZONE),
            "csrf_trusted": [o for o in config.env("CSRF_TRUSTED_ORIGINS", "").split(",") if o],
            "secure": config.env_bool("DJANGO_SECURE", not debug),
            "outbox_dir": config.env("BILLING_OUTBOX_DIR", str(VAR_DIR / "outbox")),
            "monitoring_webhook_url": config.env("MONITORING_WEBHOOK_URL", ""),
            "monitoring_silent_intervals": config.env_int("MONITORING_SILENT_INTERVALS", 2, minimum=1),
            "forecast_capacity_warning_share": _share("FORECAST_CAPACITY_WARNING_SHARE", 0.9),
            "datahub_timeout_s": config_seconds("DATAHUB_TIMEOUT_S", 30.0),
            "datahub_max_attempts": config.env_int("DATAHUB_MAX_ATTEMPTS", 5, minimum=1),
            "datahub_retry_base_s": config_seconds("DATAHUB_RETRY_BASE_S", 2.0),
            "datahub_retry_max_s": config_seconds("DATAHUB_RETRY_MAX_S", 120.0),
            "datahub_min_interval_s": config_seconds("DATAHUB_MIN_INTERVAL_S", 1.0),
            "datahub_catchup_days": config.env_int("DATAHUB_CATCHUP_DAYS", 7, minimum=1),
            "billing_fetch_lead_s": config_seconds("BILLING_FETCH_LEAD_S", 21_600.0),
            "billing_fetch_max_missing": config.env_int("BILLING_FETCH_MAX_MISSING", 4, minimum=0),
            "rebill_min_kwh": config.env_float("REBILL_PROPOSAL_MIN_KWH", 1.0, at_least=0, at_most=1e9),
            "rebill_min_amount": config.env_float("REBILL_PROPOSAL_MIN_AMOUNT", 1.0, at_least=0, at_most=1e9),
            "rebill_rule": config.env_choice("REBILL_PROPOSAL_RULE", "either", ("either", "both")),
            "commands_rate_per_s": config.env_float("COMMANDS_RATE_PER_S", 50.0, above=0, at_most=100_000),
            "commands_retry_base_s": config_seconds("COMMANDS_RETRY_BASE_S", 15.0),
            "commands_retry_max_s": config_seconds("COMMANDS_RETRY_MAX_S", 300.0),
            "commands_deadline_s": config_seconds("COMMANDS_DEADLINE_S", 900.0),
            "greenbutton_access_s": config.env_int("GREENBUTTON_ACCESS_TOKEN_SECONDS", 3600, minimum=60),
            "greenbutton_refresh_s": config.env_int("GREENBUTTON_REFRESH_TOKEN_SECONDS", 90 * 86_400, minimum=3600),
        }
    except config.ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from exc


# Lets ModelAdmin[Meter] and friends be subscripted at run time, as the type stubs want.
django_stubs_ext.monkeypatch()

_env = _read()

DEBUG: bool = bool(_env["debug"])
SECRET_KEY: str = str(_env["secret_key"])
ALLOWED_HOSTS: list[str] = list(_env["allowed_hosts"])  # type: ignore[call-overload]
CSRF_TRUSTED_ORIGINS: list[str] = list(_env["csrf_trusted"])  # type: ignore[call-overload]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files for /api/docs/, served locally (offline deployments)
    "django_prometheus",  # HTTP request latency by view for /metrics (its middleware, first and last below)
    "oauth2_provider",  # Green Button Connect's OAuth 2 authorization server
    "mdms.core",
    "monitoring",
    "lake",
    "forecast",
    "alerts",
    "commands",
    "ingest",
    "billing",
    "greenbutton",
    "portal",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last (but for Prometheus's timer), so that its process_exception sees a view's error first: a
    # database outage is a 503 page.
    "mdms.core.middleware.DatabaseUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# django-prometheus would otherwise query the migration tables at every process start.
PROMETHEUS_EXPORT_MIGRATIONS = False

ROOT_URLCONF = "mdms.urls"
WSGI_APPLICATION = "mdms.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "alerts.context.notifications",
            ],
        },
    },
]

_db = _env["database"]
assert isinstance(_db, config.DatabaseURL)
DATABASES = {"default": _db.django()}
# Two checkouts (or two developers) on one machine each get their own test databases.
MDMS_TEST_SUFFIX = config.env("MDMS_TEST_SUFFIX", "")
DATABASES["default"]["TEST"] = {"NAME": f"test_{_db.name}{MDMS_TEST_SUFFIX}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# MongoDB: raw readings, events, anomalies (time series), rollups. mdms.core.timeseries is the one
# module that knows collection names and queries.
MONGODB_URI: str = str(_env["mongodb_uri"])
MONGODB_DB: str = config.mongodb_database_name(MONGODB_URI)

REDIS_URL: str = str(_env["redis_url"])
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mdms",
    }
}

# MQTT: the project's own Mosquitto, with the dynamic-security plugin (see scripts/services.py).
MQTT_HOST: str = str(_env["mqtt_host"])
MQTT_PORT: int = int(_env["mqtt_port"])  # type: ignore[call-overload]
MQTT_TLS: bool = bool(_env["mqtt_tls"])
MQTT_CA_FILE: str = str(_env["mqtt_ca_file"])
# Meters with client certificates (docs/mqtt-tls.md): the broker's TLS listener, the CA that issues
# them, the CRL the listener reads, and the development broker to SIGHUP when the CRL changes.
MQTT_TLS_PORT: int = int(_env["mqtt_tls_port"])  # type: ignore[call-overload]
_meter_ca = _env["meter_ca"]
assert isinstance(_meter_ca, config.MeterCA)
MQTT_METER_CA_CERT_FILE: str = _meter_ca.cert_file
MQTT_METER_CA_KEY_FILE: str = _meter_ca.key_file
MQTT_METER_CA_CREATE: bool = _meter_ca.create
MQTT_METER_CRL_FILE: str = _meter_ca.crl_file
MQTT_METER_CERT_DAYS: int = int(_env["mqtt_meter_cert_days"])  # type: ignore[call-overload]
MQTT_BROKER_PID_FILE: str = str(_env["mqtt_broker_pid_file"])
MQTT_ADMIN_USERNAME: str = str(_env["mqtt_admin_username"])
MQTT_ADMIN_PASSWORD: str = str(_env["mqtt_admin_password"])
MQTT_INGEST_USERNAME: str = str(_env["mqtt_ingest_username"])
MQTT_INGEST_PASSWORD: str = str(_env["mqtt_ingest_password"])
# Empty (the default): each ingest worker holds an exclusive subscription in its persistent session,
# which Mosquitto 2.0 restores after a restart. A group name: the workers split the stream through
# $share/<group>/..., which Mosquitto 2.0 does not restore after a restart, so what meters send
# between the restart and the workers' new SUBSCRIBE is dropped (docs/reliability.md, section 3).
INGEST_SHARE_GROUP: str = str(_env["ingest_share_group"])

# Celery: Redis is broker and result store. The beat schedule is defined in mdms.schedule.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = str(_env["time_zone"])
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_EXPIRES = 3600
# Each follower of the stored-batches stream has a queue, and a worker, of its own (Procfile,
# docker-compose.yml): however long one runs, the others' runs never wait behind it. The silent-meter
# check goes with the outage follower, whose records it reads.
CELERY_TASK_ROUTES = {
    "billing.follow_stored_batches": {"queue": "rollups"},
    "monitoring.detect_anomalies": {"queue": "detect"},
    "monitoring.track_outages": {"queue": "outages"},
    "monitoring.check_silent_meters": {"queue": "outages"},
}

from mdms.schedule import BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE = BEAT_SCHEDULE

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"

# Green Button Connect My Data (greenbutton/): django-oauth-toolkit as the authorization server.
# Authorization code with PKCE (S256) for every client; short access tokens, rotated refresh tokens.
OAUTH2_PROVIDER = {
    "PKCE_REQUIRED": True,
    # RFC 9700 (OAuth 2.0 security BCP) now rather than at toolkit 4.0: S256 only, no implicit or
    # password grant, no token in a query string, tokens kept only as hashes, the issuer named in
    # every authorization response (RFC 9207, against mix-up attacks), and a replayed refresh token
    # revokes its family.
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(_env["greenbutton_access_s"]),  # type: ignore[call-overload]
    "REFRESH_TOKEN_EXPIRE_SECONDS": int(_env["greenbutton_refresh_s"]),  # type: ignore[call-overload]
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ROTATE_REFRESH_TOKEN": True,
    # Third parties' callbacks: https only in production; plain http too while developing (loopback).
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"] if DEBUG else ["https"],
    "REQUEST_APPROVAL_PROMPT": "force",  # the consumer chooses meters and days every time
    "SCOPES_BACKEND_CLASS": "greenbutton.scopes.EspiScopes",
    "OAUTH2_VALIDATOR_CLASS": "greenbutton.oauth.EspiOAuth2Validator",
}
# Named so greenbutton's migration can depend on it (a swappable model); the toolkit's own model.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# Local days and billing months are in the utility's zone; everything is stored in UTC.
TIME_ZONE: str = str(_env["time_zone"])
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.js from the installed plotly package, as static/vendor/plotly.min.js (not committed).
    "mdms.staticfinders.PackageDataFinder",
]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

BILLING_OUTBOX_DIR: str = str(_env["outbox_dir"])

# Monitoring: outage incidents are POSTed as JSON to the utility's outage management system at
# this URL (empty = off). A meter silent for this many of its intervals is an outage suspect.
MONITORING_WEBHOOK_URL: str = str(_env["monitoring_webhook_url"])
MONITORING_SILENT_INTERVALS: int = int(_env["monitoring_silent_intervals"])  # type: ignore[call-overload]


# Data lake (lake, docs/lake.md): where each finished local day of raw readings and events
# goes as Parquet. LAKE_URL: a local directory (default var/lake) or an fsspec URL such as
# s3://bucket/prefix; LAKE_STORAGE_OPTIONS: a JSON object passed to the file system (for s3fs:
# {"endpoint_url": ..., "key": ..., "secret": ...}); LAKE_RAW_RETENTION_DAYS: raw rows older than
# this many days leave MongoDB once verified in the lake (0 = never).
def _lake() -> dict[str, object]:
    import json

    try:
        raw_options = config.env("LAKE_STORAGE_OPTIONS", "{}")
        try:
            options = json.loads(raw_options)
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"LAKE_STORAGE_OPTIONS must be a JSON object: {exc}") from None
        if not isinstance(options, dict):
            raise ImproperlyConfigured('LAKE_STORAGE_OPTIONS must be a JSON object, such as {"endpoint_url": "..."}')
        return {
            "url": config.env("LAKE_URL", str(VAR_DIR / "lake")),
            "options": options,
            "retention_days": config.env_int("LAKE_RAW_RETENTION_DAYS", 400, minimum=0),
        }
    except config.ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from exc


_lake_env = _lake()
LAKE_URL: str = str(_lake_env["url"])
LAKE_STORAGE_OPTIONS: dict[str, object] = dict(_lake_env["options"])  # type: ignore[call-overload]
LAKE_RAW_RETENTION_DAYS: int = int(_lake_env["retention_days"])  # type: ignore[call-overload]

# Demand forecast: a feeder whose forecast peak exceeds this share of its rating (0.9 = 90%) gets
# a capacity warning on the operator dashboard.
FORECAST_CAPACITY_WARNING_SHARE: float = float(_env["forecast_capacity_warning_share"])  # type: ignore[arg-type]

# Data hub pulls (ingest.datahub, docs/datahub.md): per-request timeout, attempts per pull (429,
# 5xx and network errors are retried), exponential backoff from RETRY_BASE capped at RETRY_MAX (a
# Retry-After beyond the cap ends the pull in error instead), at least MIN_INTERVAL between two
# requests to one hub across every process, and how many past days the daily job catches up.
# The daily job's hour, DATAHUB_PULL_HOUR, is read by mdms.schedule (imported above, mid-settings).
DATAHUB_TIMEOUT_S: float = float(_env["datahub_timeout_s"])  # type: ignore[arg-type]
DATAHUB_MAX_ATTEMPTS: int = int(_env["datahub_max_attempts"])  # type: ignore[call-overload]
DATAHUB_RETRY_BASE_S: float = float(_env["datahub_retry_base_s"])  # type: ignore[arg-type]
DATAHUB_RETRY_MAX_S: float = float(_env["datahub_retry_max_s"])  # type: ignore[arg-type]
DATAHUB_MIN_INTERVAL_S: float = float(_env["datahub_min_interval_s"])  # type: ignore[arg-type]
DATAHUB_CATCHUP_DAYS: int = int(_env["datahub_catchup_days"])  # type: ignore[call-overload]

# Missing reads fetched before billing (docs/commands.md): how long before the 08:00 bill-cycle run
# the accounts due are judged, and how many missing intervals a period may have and still go out
# in batch 1 (a closing register read is needed too).
BILLING_FETCH_LEAD_S: float = float(_env["billing_fetch_lead_s"])  # type: ignore[arg-type]
BILLING_FETCH_MAX_MISSING: int = int(_env["billing_fetch_max_missing"])  # type: ignore[call-overload]

# Actuals that replace billed estimates (billing.rebill_proposals, docs/meter-lifecycle.md): the
# issued bill never changes; a re-bill is proposed in the exception queue when the re-bill would
# differ from it by at least MIN_KWH (billed kWh, after the multiplier) and/or MIN_AMOUNT (the bill's
# currency, taxes included): RULE "either" proposes when one of the two is reached, "both" when both are.
REBILL_PROPOSAL_MIN_KWH: float = float(_env["rebill_min_kwh"])  # type: ignore[arg-type]
REBILL_PROPOSAL_MIN_AMOUNT: float = float(_env["rebill_min_amount"])  # type: ignore[arg-type]
REBILL_PROPOSAL_RULE: str = str(_env["rebill_rule"])

# Commands to meters (docs/commands.md): the fleet-wide send rate (a mass disconnect or a
# read-everything must not flood the broker), the wait for an answer before sending again (doubling
# up to the maximum), and a command's default deadline.
COMMANDS_RATE_PER_S: float = float(_env["commands_rate_per_s"])  # type: ignore[arg-type]
COMMANDS_RETRY_BASE_S: float = float(_env["commands_retry_base_s"])  # type: ignore[arg-type]
COMMANDS_RETRY_MAX_S: float = float(_env["commands_retry_max_s"])  # type: ignore[arg-type]
COMMANDS_DEADLINE_S: float = float(_env["commands_deadline_s"])  # type: ignore[arg-type]

# E-mail (consumer alert notifications, alerts). EMAIL_BACKEND: smtp, file, console, locmem
# or a dotted path. By default smtp when EMAIL_HOST is set, else one file per message under
# var/mail/ (EMAIL_FILE_PATH), so `make run` needs no mail server and what would have been sent
# can be read there. PORTAL_BASE_URL makes the links in e-mails absolute.
_EMAIL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
}


def _email() -> dict[str, object]:
    try:
        host = config.env("EMAIL_HOST", "")
        choice = config.env("EMAIL_BACKEND", "smtp" if host else "file")
        backend = _EMAIL_BACKENDS.get(choice, choice)
        if "." not in backend:
            raise ImproperlyConfigured(
                f"EMAIL_BACKEND must be smtp, file, console, locmem or a dotted path, not {choice!r}"
            )
        if backend == _EMAIL_BACKENDS["smtp"] and not host:
            raise ImproperlyConfigured("EMAIL_HOST must be set when EMAIL_BACKEND is smtp")
        use_tls, use_ssl = config.env_bool("EMAIL_USE_TLS", True), config.env_bool("EMAIL_USE_SSL", False)
        if use_tls and use_ssl:
            raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be true")
        sender = config.env("DEFAULT_FROM_EMAIL", "MDMS <mdms@localhost>")
        if "@" not in sender:
            raise ImproperlyConfigured(f"DEFAULT_FROM_EMAIL must be an e-mail address, not {sender!r}")
        portal_url = config.env("PORTAL_BASE_URL", "http://127.0.0.1:8000")
        if not portal_url.startswith(("http://", "https://")):
            raise ImproperlyConfigured(f"PORTAL_BASE_URL must be an http:// or https:// URL, not {portal_url!r}")
        return {
            "backend": backend,
            "host": host,
            "port": config.env_int("EMAIL_PORT", 465 if use_ssl else 587, minimum=1),
            "user": config.env("EMAIL_HOST_USER", ""),
            "password": config.env("EMAIL_HOST_PASSWORD", ""),
            "use_tls": use_tls and not use_ssl,
            "use_ssl": use_ssl,
            "timeout": config.env_int("EMAIL_TIMEOUT", 10, minimum=1),
            "file_path": config.env("EMAIL_FILE_PATH", str(VAR_DIR / "mail")),
            "from": sender,
            "portal_url": portal_url,
        }
    except config.ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from exc


_mail = _email()
EMAIL_BACKEND: str = str(_mail["backend"])
EMAIL_HOST: str = str(_mail["host"])
EMAIL_PORT: int = int(_mail["port"])  # type: ignore[call-overload]
EMAIL_HOST_USER: str = str(_mail["user"])
EMAIL_HOST_PASSWORD: str = str(_mail["password"])
EMAIL_USE_TLS: bool = bool(_mail["use_tls"])
EMAIL_USE_SSL: bool = bool(_mail["use_ssl"])
EMAIL_TIMEOUT: int = int(_mail["timeout"])  # type: ignore[call-overload]
EMAIL_FILE_PATH: str = str(_mail["file_path"])
DEFAULT_FROM_EMAIL: str = str(_mail["from"])
SERVER_EMAIL: str = DEFAULT_FROM_EMAIL
PORTAL_BASE_URL: str = str(_mail["portal_url"])


# SFTP delivery of the outbox's BILLDET files to the CIS (billing.delivery; README "Doors"). Off
# while BILLING_SFTP_HOST is empty. Each new or changed file goes to BILLING_SFTP_REMOTE_DIR on
# that server as BILLING_SFTP_USER, authenticated by the private key in BILLING_SFTP_KEY_FILE, and
# only to a server presenting BILLING_SFTP_KNOWN_HOST_KEY (its public host key, one OpenSSH line
# such as "ssh-ed25519 AAAA..."): there is no trust on first use. Failed uploads are retried after
# RETRY_BASE, doubling up to RETRY_MAX.
def _sftp() -> dict[str, object]:
    try:
        host = config.env("BILLING_SFTP_HOST", "")
        port = config.env_int("BILLING_SFTP_PORT", 22, minimum=1, maximum=65535)
        user = config.env("BILLING_SFTP_USER", "")
        key_file = config.env("BILLING_SFTP_KEY_FILE", "")
        key_passphrase = config.env("BILLING_SFTP_KEY_PASSPHRASE", "")
        known_host_key = config.env("BILLING_SFTP_KNOWN_HOST_KEY", "")
        remote_dir = config.env("BILLING_SFTP_REMOTE_DIR", ".")
        timeout_s = config_seconds("BILLING_SFTP_TIMEOUT_S", 30.0)
        retry_base_s = config_seconds("BILLING_SFTP_RETRY_BASE_S", 30.0)
        retry_max_s = config_seconds("BILLING_SFTP_RETRY_MAX_S", 3600.0)
    except config.ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    if host:
        for name, value in (
            ("BILLING_SFTP_USER", user),
            ("BILLING_SFTP_KEY_FILE", key_file),
            ("BILLING_SFTP_KNOWN_HOST_KEY", known_host_key),
        ):
            if not value:
                raise ImproperlyConfigured(f"{name} must be set when BILLING_SFTP_HOST is set")
        if not Path(key_file).is_file():
            raise ImproperlyConfigured(f"BILLING_SFTP_KEY_FILE names no readable file: {key_file!r}")
        # asyncssh is imported only when delivery is on: a process without it starts faster.
        import asyncssh

        try:
            asyncssh.import_public_key(known_host_key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"BILLING_SFTP_KNOWN_HOST_KEY must be one OpenSSH public key line such as 'ssh-ed25519 AAAA...': {exc}"
            ) from None
    if retry_max_s < retry_base_s:
        raise ImproperlyConfigured("BILLING_SFTP_RETRY_MAX_S must be at least BILLING_SFTP_RETRY_BASE_S")
    return {
        "host": host,
        "port": port,
        "user": user,
        "key_file": key_file,
        "key_passphrase": key_passphrase,
        "known_host_key": known_host_key,
        "remote_dir": remote_dir,
        "timeout_s": timeout_s,
        "retry_base_s": retry_base_s,
        "retry_max_s": retry_max_s,
    }


_sftp_env = _sftp()
BILLING_SFTP_HOST: str = str(_sftp_env["host"])
BILLING_SFTP_PORT: int = int(_sftp_env["port"])  # type: ignore[call-overload]
BILLING_SFTP_USER: str = str(_sftp_env["user"])
BILLING_SFTP_KEY_FILE: str = str(_sftp_env["key_file"])
BILLING_SFTP_KEY_PASSPHRASE: str = str(_sftp_env["key_passphrase"])
BILLING_SFTP_KNOWN_HOST_KEY: str = str(_sftp_env["known_host_key"])
BILLING_SFTP_REMOTE_DIR: str = str(_sftp_env["remote_dir"])
BILLING_SFTP_TIMEOUT_S: float = float(_sftp_env["timeout_s"])  # type: ignore[arg-type]
BILLING_SFTP_RETRY_BASE_S: float = float(_sftp_env["retry_base_s"])  # type: ignore[arg-type]
BILLING_SFTP_RETRY_MAX_S: float = float(_sftp_env["retry_max_s"])  # type: ignore[arg-type]


# Prometheus metrics at /metrics (mdms.metrics; README "Doors"). Refused unless the request carries
# "Authorization: Bearer <METRICS_TOKEN>" or comes from an address in METRICS_ALLOWED_NETWORKS
# (comma-separated addresses or CIDR networks, checked against REMOTE_ADDR, never a forwarded
# header). With neither set, /metrics refuses everyone.
def _metrics() -> dict[str, object]:
    import ipaddress

    try:
        token = config.env("METRICS_TOKEN", "")
        raw_networks = config.env("METRICS_ALLOWED_NETWORKS", "")
    except config.ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    if token and len(token) < 16:
        raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long")
    networks = []
    for item in (part.strip() for part in raw_networks.split(",")):
        if item:
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ImproperlyConfigured(
                    f"METRICS_ALLOWED_NETWORKS must list addresses or networks such as 10.0.0.0/8, not {item!r}"
                ) from None
    return {"token": token, "networks": networks}


_metrics_env = _metrics()
METRICS_TOKEN: str = str(_metrics_env["token"])
METRICS_ALLOWED_NETWORKS: list[str] = list(_metrics_env["networks"])  # type: ignore[call-overload]


REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    # DRF's JSON parser with a bound on nesting (a body nested thousands deep was a RecursionError, a 500).
    "DEFAULT_PARSER_CLASSES": [
        "portal.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 100,
    # One error format for every API answer: {"error": {"code", "message", "field"}}.
    "EXCEPTION_HANDLER": "portal.api.errors.exception_handler",
    # Per minute, counted in Redis (the default cache) by portal.api.throttling: a CIS batch job
    # paging through 10,000 accounts at 1000 a page stays far below the token budget.
    "DEFAULT_THROTTLE_RATES": {
        "token": config_rate("API_RATE_TOKEN", "1200/min"),
        "user": config_rate("API_RATE_USER", "600/min"),
        "anon": config_rate("API_RATE_ANON", "60/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MDMS API",
    "DESCRIPTION": (
        "Meter data management: master data, usage, billing determinants, reads, outages. "
        "Machine clients send `Authorization: Bearer <token>`; errors are "
        '`{"error": {"code", "message", "field"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "DEFAULT_GENERATOR_CLASS": "portal.api.schema.ApiSchemaGenerator",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema.add_error_responses",
    ],
    # Choice sets that share a field name with another model's ("kind", "status") get names of their own.
    "ENUM_NAME_OVERRIDES": {
        "MeterCommandKindEnum": "commands.models.KIND_CHOICES",
        "BillKindEnum": "billing.models.Bill.Kind",
        "MeterCommandStatusEnum": "commands.models.MeterCommand.Status",
        "ReadingSourceEnum": "mdms.core.reading_quality.SOURCES",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Request bodies: nothing the API takes is near 1 MiB. DRF reads JSON through request.body, which
# checks this; portal.api.errors answers 413 in the API's error format.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    # asyncssh logs every connection step at INFO; billing.delivery logs each delivery itself.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "asyncssh": {"level": "WARNING"}},
}

if bool(_env["secure"]):
    SECURE_SSL_REDIRECT = True
    # Prometheus scrapes the web service inside the compose network over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
