"""PostgreSQL unavailable for a minute while meters publish, on a private PostgreSQL cluster.

The test database is copied into a private cluster (scripts/services.py, never the shared server);
the ingest worker (a process of its own) and this test's portal requests use it. It is stopped for
OUTAGE_S seconds: the ingest goes on storing the readings of the meters it knows, and holds the
messages of a meter it does not know yet unacknowledged; the portal answers 503 with a page that
says so (the API in its error shape); /healthz names PostgreSQL. When it returns, everything
recovers by itself and nothing is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import close_old_connections, connections
from django.test import Client
from faults_support import PublishingMeter, bounded_wait, people, publish_steadily

from ingest.testing import drop_session
from mdms.config import BASE_DIR
from mdms.core.timeseries import readings as store
from scripts import services

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]
OUTAGE_S = 60.0
RATE = 4.0  # readings a second per meter
HOLD_S = 8.0  # the last seconds of the outage, when a meter the worker does not know yet publishes


@contextmanager
def database_moved_to(server: services.PrivatePostgres, name: str) -> Iterator[None]:
    """This process's Django connection on the private cluster, for the test's duration."""
    connection = connections["default"]
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(server.port), NAME=name, PASSWORD="")
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)


@pytest.fixture
def private_postgres(private_dir: Path, role_groups_made: None) -> Iterator[tuple[services.PrivatePostgres, str]]:
    """A private cluster holding a copy of the test database (schema, and the role groups)."""
    source = connections["default"].settings_dict
    server = services.PrivatePostgres(private_dir / "postgres", superuser=source["USER"])
    server.start()
    name = "mdms_outage"
    try:
        with psycopg.connect(
            host="127.0.0.1", port=server.port, user=source["USER"], dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        bin_dir = Path(server.pg_ctl).parent
        dump = subprocess.run(
            [str(bin_dir / "pg_dump"), "-h", source["HOST"], "-p", str(source["PORT"]), "-U", source["USER"],
             "--no-owner", "--no-privileges", source["NAME"]],
            check=True, capture_output=True, env={**os.environ, "PGPASSWORD": source["PASSWORD"] or ""},
        )  # fmt: skip
        subprocess.run(
            [str(bin_dir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(server.port),
             "-U", source["USER"], "-d", name],
            input=dump.stdout, check=True, capture_output=True,
        )  # fmt: skip
        with database_moved_to(server, name):
            yield server, name
    finally:
        server.kill()


def worker_env(server: services.PrivatePostgres, name: str) -> dict[str, str]:
    user = connections["default"].settings_dict["USER"]
    parts = urlsplit(django_settings.MONGODB_URI)
    mongodb_uri = urlunsplit(
        (parts.scheme, parts.netloc, f"/{django_settings.MONGODB_DB}", parts.query, parts.fragment)
    )
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{user}@127.0.0.1:{server.port}/{name}",
        "MONGODB_URI": mongodb_uri,
        "PYTHONUNBUFFERED": "1",
    }


def test_postgres_down_for_a_minute_ingest_goes_on_portal_says_503_and_all_recovers_by_itself(
    private_postgres: tuple[services.PrivatePostgres, str], private_dir: Path, mongo: Any, capsys: Any
) -> None:
    server, name = private_postgres
    alice, bob = people(2, "outage")
    meters = [PublishingMeter(alice), PublishingMeter(bob)]
    pks = [m.pk for m in meters]
    client = Client()
    client.force_login(alice.user)
    dashboard = f"/meters/{alice.meter.pk}/"
    assert client.get(dashboard).status_code == 200
    client_id = f"fault-pg-{os.getpid()}"
    log = private_dir / "worker.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "ingest_worker", "--client-id", client_id, "--flush-interval", "0.05"],
            cwd=BASE_DIR, env=worker_env(server, name), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    total = int(RATE * (OUTAGE_S + 40))
    sent = [0]
    stop = threading.Event()
    publisher = threading.Thread(
        target=publish_steadily, args=(meters, total), kwargs={"per_second": RATE, "sent": sent, "stop": stop}
    )
    late: PublishingMeter | None = None
    late_infos: list[Any] = []
    try:
        # The worker is subscribed once a probe reading (number -1 of alice's stream) is stored.
        bounded_wait(
            lambda: meters[0].publish(-1).wait_for_publish(5) is None and store.count_distinct_readings([pks[0]]) > 0,
            60, "the worker's subscription", pause=1.0,
        )  # fmt: skip
        publisher.start()
        bounded_wait(lambda: store.count_distinct_readings(pks) >= 2 * int(RATE * 5), 60, "the worker storing")
        # A meter registered just before the outage: the worker learns of it only once PostgreSQL is back.
        (carol,) = people(1, "late")
        late = PublishingMeter(carol)
        server.stop()
        down_at = time.monotonic()
        stored_at_stop = store.count_distinct_readings(pks)

        page = client.get(dashboard)
        api = client.get("/api/v1/meters/")
        health = client.get("/healthz")
        assert page.status_code == 503
        text = page.content.decode()
        assert "Temporarily unavailable" in text and "Traceback" not in text and page["Retry-After"]
        assert api.status_code == 503 and api.json()["error"]["code"] == "service_unavailable"
        assert health.status_code == 503
        services_state = health.json()["services"]
        assert services_state["postgresql"]["up"] is False
        assert all(services_state[other]["up"] for other in ("mongodb", "redis", "mosquitto"))

        # The ingest goes on storing the known meters' readings through the outage.
        bounded_wait(
            lambda: store.count_distinct_readings(pks) >= stored_at_stop + 2 * int(RATE * 10), 60, "storing while down"
        )
        # Near the end of the outage the unknown meter speaks: its message cannot be judged without the
        # registry, so the worker holds it, and what follows it, unacknowledged until PostgreSQL is back.
        time.sleep(max(0.0, OUTAGE_S - HOLD_S - (time.monotonic() - down_at)))
        stored_during = store.count_distinct_readings(pks) - stored_at_stop
        late_infos = [late.publish(i) for i in range(20)]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        held = 20 - store.count_distinct_readings([carol.meter.pk])
        server.start()
        up_at = time.monotonic()

        def portal_back() -> bool:
            close_old_connections()  # what Django's request_started does in a server; the test client skips it
            return client.get(dashboard).status_code == 200 and client.get("/healthz").status_code == 200

        portal_s = bounded_wait(portal_back, 60, "the portal and /healthz to recover", pause=0.5)
        publisher.join(180)
        assert sent[0] == total
        for info in late_infos:
            info.wait_for_publish(30)
        caught_up_s = bounded_wait(
            lambda: (
                store.count_distinct_readings(pks) == 2 * total + 1
                and store.count_distinct_readings([carol.meter.pk]) == 20
            ),
            120,
            "every reading stored, the late meter's included",
        )
        assert process.poll() is None  # the same worker, never restarted
        with capsys.disabled():
            print(
                f"\n[fault postgres-outage] PostgreSQL down {up_at - down_at:.0f} s; ingest stored "
                f"{stored_during} readings of known meters meanwhile; held {held} of an unknown meter's 20 (and what followed) for the last {HOLD_S:.0f} s "
                f"until it returned; portal 503 page, /healthz names postgresql; portal back {portal_s:.1f} s "
                f"after PostgreSQL; {2 * total + 21} sent, all stored, 0 lost (caught up {caught_up_s:.1f} s later)"
            )
    finally:
        stop.set()
        publisher.join(30)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        drop_session(client_id)
        # The worker's log outlives the private directory, for a failure's diagnosis.
        (BASE_DIR / "var" / "log").mkdir(parents=True, exist_ok=True)
        (BASE_DIR / "var" / "log" / "fault-postgres-worker.log").write_bytes(log.read_bytes())
        for meter in [*meters, *([late] if late else [])]:
            meter.close()
