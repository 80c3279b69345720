"""/metrics: Prometheus's text format, refused without its token, and moving with the data."""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from ingest import counters
from ingest.testing import RunningWorker, drop_session, wait_for
from ingest.tests.test_worker import Meter, reading
from ingest.worker import IngestWorker
from mdms.core.testing import make_consumer, start_django_with

TOKEN = "metrics-token-of-the-tests-0123456789"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels), through prometheus_client's own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    return TOKEN


def scrape_live(url: str, token: str | None = TOKEN) -> Samples:
    request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(response.read().decode())


# --- who may read it --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_refused_without_the_token_and_served_with_it(metrics_token: str, client: Client) -> None:
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert refused.json()["error"]["code"] == "not_authenticated"
    assert client.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all-00"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    served = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert served.status_code == 200
    samples = parse(served.content.decode())
    assert value(samples, "mdms_metrics_source_up", source="ingest") == 1


@pytest.mark.django_db
def test_with_neither_token_nor_networks_metrics_are_off(settings: Any, client: Client) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []
    response = client.get("/metrics", headers={"Authorization": "Bearer anything-at-all-000000"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "metrics_off"


@pytest.mark.django_db
def test_an_allowed_network_reads_without_a_token_and_others_are_refused(settings: Any, client: Client) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


@pytest.mark.parametrize(
    ("variable", "value"), [("METRICS_TOKEN", "short"), ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network")]
)
def test_a_bad_metrics_setting_fails_at_start_with_its_name(variable: str, value: str) -> None:
    result = start_django_with({variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr


# --- what it says -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_labelled_figures_list_every_state_even_at_zero(metrics_token: str, client: Client) -> None:
    samples = parse(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode())
    for state in ("pending", "running", "completed", "failed"):
        assert ("mdms_billing_runs", (("state", state),)) in samples
    for follower in ("rollups", "detection", "outages"):
        assert ("mdms_stored_batches_follower_lag", (("follower", follower),)) in samples
    for queue in ("celery", "ingest"):
        assert ("mdms_celery_queue_length", (("queue", queue),)) in samples
    for severity in ("info", "warning", "critical"):
        assert ("mdms_anomalies_active", (("severity", severity),)) in samples
    assert ("mdms_ingest_dead_letters_total", (("reason", "bad_json"),)) in samples
    assert ("mdms_ingest_batch_latency_seconds_bucket", (("le", "+Inf"),)) in samples


@pytest.fixture
def ingest_worker(mongo: Any) -> Iterator[IngestWorker]:
    running = RunningWorker("test-metrics", session_expiry_s=60)
    yield running.worker
    running.stop(timeout=10)
    drop_session(running.worker.client_id)


@pytest.fixture
def dora(role_groups: None, mongo: Any) -> Iterator[Meter]:
    meter = Meter(make_consumer(f"dora{uuid.uuid4().hex[:6]}"))
    yield meter
    meter.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_reading_published_through_the_broker_moves_the_counters_of_the_live_server(
    metrics_token: str, live_server: Any, ingest_worker: IngestWorker, dora: Meter, settings: Any
) -> None:
    before = scrape_live(live_server.url)
    block = [reading(i) for i in range(3)]
    dora.publish(block).wait_for_publish(10)
    dora.publish(block).wait_for_publish(10)  # MQTT at-least-once: the same block again
    dora.publish(b"{not json").wait_for_publish(10)
    wait_for(
        lambda: counters.snapshot()["received"] - before[("mdms_ingest_messages_received_total", ())] >= 3,
        30,
        "the three messages",
    )
    after = scrape_live(live_server.url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("mdms_ingest_messages_received_total") == 3
    assert moved("mdms_ingest_readings_received_total") == 6
    assert moved("mdms_ingest_readings_stored_total") == 3
    assert moved("mdms_ingest_duplicates_total") == 3
    assert moved("mdms_ingest_dead_letters_total", reason="bad_json") == 1
    batches = moved("mdms_ingest_batches_total")
    assert batches >= 1
    # Every batch lands in the histogram, once, with its latency in the sum.
    assert moved("mdms_ingest_batch_latency_seconds_count") == batches
    assert moved("mdms_ingest_batch_latency_seconds_bucket", le="+Inf") == batches
    assert moved("mdms_ingest_batch_latency_seconds_sum") > 0
    # No follower runs in this test: each stored batch waits for them.
    for follower in ("rollups", "detection", "outages"):
        assert moved("mdms_stored_batches_follower_lag", follower=follower) >= 1
    age = value(after, "mdms_ingest_newest_reading_age_seconds")
    newest = dt.datetime.fromisoformat(block[-1]["ts"])
    assert age >= (dt.datetime.now(tz=dt.UTC) - newest).total_seconds() - 60
    # django-prometheus: the first scrape's latency, by view.
    assert value(after, "django_http_requests_latency_seconds_by_view_method_count", view="metrics", method="GET") >= 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_under_gunicorn_style_multiprocess_mode_the_http_metrics_come_from_the_shared_files(tmp_path: Any) -> None:
    """PROMETHEUS_MULTIPROC_DIR (the compose web service's): each process writes its HTTP metrics to
    files, and /metrics adds up every process's, here two processes one after the other."""
    import subprocess
    import sys

    from ingest.tests.test_worker import subprocess_env
    from mdms.config import BASE_DIR

    script = (
        "import django, os; django.setup()\n"
        "from django.test import Client\n"
        "from django.test.utils import setup_test_environment\n"
        "setup_test_environment()\n"
        "response = Client().get('/metrics', headers={'Authorization': 'Bearer ' + os.environ['METRICS_TOKEN']})\n"
        "assert response.status_code == 200, response.content\n"
        "print(response.content.decode())\n"
    )
    env = {
        **subprocess_env(),
        "DJANGO_SETTINGS_MODULE": "mdms.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "METRICS_TOKEN": TOKEN,
    }
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
        )
        for _ in range(2)
    ]
    assert all(o.returncode == 0 for o in outputs), outputs[-1].stderr
    samples = parse(outputs[-1].stdout)
    # The first process's request, counted from its file, is in the second process's answer.
    assert (
        value(samples, "django_http_requests_latency_seconds_by_view_method_count", view="metrics", method="GET") == 1
    )
    assert value(samples, "mdms_metrics_source_up", source="billing") == 1
    assert list(tmp_path.glob("*.db"))


@pytest.mark.django_db
def test_a_queued_task_shows_in_the_celery_queue_length(metrics_token: str, client: Client) -> None:
    from mdms.celery import app
    from mdms.core import stored_batches

    def queue_length() -> float:
        samples = parse(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode())
        return value(samples, "mdms_celery_queue_length", queue="celery")

    before = queue_length()
    app.send_task("billing.outbox_sweep")  # no worker runs here: it waits in Redis
    app.send_task("billing.outbox_sweep", priority=9)  # a prioritised message waits in a sibling list
    try:
        assert queue_length() == before + 2
    finally:
        redis = stored_batches.connection()
        redis.delete("celery", *(f"celery\x06\x16{priority}" for priority in (3, 6, 9)))  # the test's Redis database
