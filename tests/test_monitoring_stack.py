"""Prometheus and Grafana beside the MDMS: the compose services, their provisioning, and a dashboard
whose every query names a metric that /metrics exposes."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client

from ingest import counters
from tests.test_metrics import TOKEN, parse

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mdms.json"
# Metric names in PromQL: ours and django-prometheus's (functions and labels never start so).
METRIC_NAME = re.compile(r"\b(?:mdms|django)_[a-z0-9_]+\b")


def record_one_batch() -> None:
    """Count one stored batch as the ingest does: the age of the newest reading exists only after one."""
    pipe = counters.connection().pipeline(transaction=False)
    now = dt.datetime.now(tz=dt.UTC)
    counters.record_batch(pipe, counts={"received": 1}, reasons={}, latency_ms=210.0, newest_ts=now, now=now)
    pipe.execute()


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("./"):
            found[container] = host
    return found


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_compose_runs_prometheus_scraping_the_web_service_with_the_token() -> None:
    compose = _compose()
    prometheus = compose["services"]["prometheus"]
    config_path = _mounts(prometheus)["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load((ROOT / config_path).read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "mdms"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["web:8000"]
    # The token file is written from METRICS_TOKEN by the entrypoint, the same variable web reads.
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"] in " ".join(prometheus["entrypoint"])
    assert "METRICS_TOKEN" in prometheus["environment"]
    web = compose["services"]["web"]["environment"]
    assert web["METRICS_TOKEN"] == prometheus["environment"]["METRICS_TOKEN"] == "${METRICS_TOKEN:?set METRICS_TOKEN}"
    assert "web" in web["ALLOWED_HOSTS"].split(",")
    # gunicorn's workers add up their HTTP metrics through multiprocess files, emptied at start.
    assert web["PROMETHEUS_MULTIPROC_DIR"] in compose["services"]["web"]["command"]


def test_compose_runs_grafana_with_the_datasource_and_the_dashboard_provisioned() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = _mounts(grafana)
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "mdms.yml").read_text())["providers"]
    dashboards_dir = ROOT / mounts[provider["options"]["path"]]
    assert DASHBOARD.parent == dashboards_dir
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
            assert all(t["datasource"]["uid"] == datasource["uid"] for t in panel["targets"])
    assert "${GRAFANA_ADMIN_PASSWORD:?" in (ROOT / "docker-compose.yml").read_text()


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    queried = {name for expr in _dashboard_queries() for name in METRIC_NAME.findall(expr)}
    for wanted in (
        "mdms_ingest_messages_received_total",
        "mdms_ingest_readings_stored_total",
        "mdms_ingest_dead_letters_total",
        "mdms_ingest_duplicates_total",
        "mdms_ingest_batch_latency_seconds_bucket",
        "mdms_stored_batches_follower_lag",
        "mdms_celery_queue_length",
        "mdms_outage_incidents_open",
        "mdms_anomalies_active",
        "mdms_billing_runs",
        "django_http_requests_latency_seconds_by_view_method_bucket",
    ):
        assert wanted in queried


@pytest.mark.django_db
def test_every_metric_the_dashboard_queries_is_exposed_by_metrics(settings: Any, client: Client) -> None:
    settings.METRICS_TOKEN = TOKEN
    record_one_batch()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    client.get("/metrics", headers=auth)  # one request for django-prometheus to have counted
    exposed = {name for name, _labels in parse(client.get("/metrics", headers=auth).content.decode())}
    queried = {name for expr in _dashboard_queries() for name in METRIC_NAME.findall(expr)}
    assert queried and not queried - exposed, f"the dashboard queries metrics /metrics lacks: {queried - exposed}"
