"""A real Prometheus (Debian's binary) scrapes the live test server with the shipped configuration,
and answers every query of the Grafana dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from billing.tests.sftp_server import free_port
from ingest.testing import wait_for
from tests.test_metrics import TOKEN
from tests.test_monitoring_stack import DEPLOY, METRIC_NAME, _dashboard_queries, record_one_batch

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def prometheus(live_server: Any, settings: Any, tmp_path: Path) -> Iterator[str]:
    """Prometheus with deploy/prometheus/prometheus.yml, its target and token file pointed at this test."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is missing: `python scripts/services.py test-tools` installs it"
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = TOKEN, []
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    port = free_port()
    config["global"]["scrape_interval"] = "1s"
    for job in config["scrape_configs"]:
        if job["job_name"] == "mdms":
            (tmp_path / "metrics-token").write_text(TOKEN)
            job["authorization"]["credentials_file"] = str(tmp_path / "metrics-token")
            job["static_configs"] = [{"targets": [live_server.url.removeprefix("http://")]}]
        else:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


def test_prometheus_scrapes_metrics_with_the_token_and_answers_every_dashboard_query(prometheus: str) -> None:
    def mdms_target_up() -> bool:
        try:
            targets = _api(prometheus, "/api/v1/targets")["data"]["activeTargets"]
        except OSError:
            return False
        return any(t["labels"]["job"] == "mdms" and t["health"] == "up" for t in targets)

    record_one_batch()
    wait_for(mdms_target_up, 60, "Prometheus to scrape /metrics")
    names = {name for expr in _dashboard_queries() for name in METRIC_NAME.findall(expr)}

    def missing() -> set[str]:
        return {
            name
            for name in names
            if not _api(prometheus, "/api/v1/query", query=f'count({{__name__="{name}"}})')["data"]["result"]
        }

    try:
        wait_for(lambda: not missing(), 30, "every series the dashboard queries")
    except AssertionError:
        raise AssertionError(f"Prometheus never stored {sorted(missing())}") from None
    for expr in _dashboard_queries():
        answer = _api(prometheus, "/api/v1/query", query=expr)
        assert answer["status"] == "success", expr
