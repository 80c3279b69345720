"""The production topology: docker-compose.yml parses and gives every service what the settings read."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Variables with a safe default that production may leave unset.
OPTIONAL = {"MDMS_TEST_SUFFIX", "MDMS_VAR_DIR"}


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _variables_the_settings_read() -> set[str]:
    tree = ast.parse((ROOT / "mdms" / "settings.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "config"
            and node.func.attr.startswith(("env", "parse_"))
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def test_compose_names_every_service_of_the_topology() -> None:
    services = set(_compose()["services"])
    assert {"web", "worker", "beat", "ingest", "postgres", "mongo", "redis", "mosquitto"} <= services


def test_every_app_service_gets_every_variable_the_settings_read() -> None:
    compose = _compose()
    wanted = _variables_the_settings_read() - OPTIONAL
    assert {"DATABASE_URL", "MONGODB_URI", "REDIS_URL", "MQTT_HOST", "MQTT_PORT", "TIME_ZONE", "SECRET_KEY"} <= wanted
    for name in ("web", "worker", "beat", "ingest", "commands"):
        environment = compose["services"][name]["environment"]
        missing = wanted - set(environment)
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_mongo_runs_as_a_replica_set_and_the_app_asks_for_it() -> None:
    compose = _compose()
    assert "--replSet" in compose["services"]["mongo"]["command"]
    assert "replicaSet=rs0" in compose["services"]["web"]["environment"]["MONGODB_URI"]


def test_the_ingest_worker_is_its_own_scalable_service() -> None:
    ingest = _compose()["services"]["ingest"]
    assert "--ingest" in ingest["command"]
    assert "container_name" not in ingest, "a fixed container name would stop --scale"
    assert "ports" not in ingest


def test_production_secrets_have_no_default_in_compose() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("SECRET_KEY", "POSTGRES_PASSWORD", "MQTT_ADMIN_PASSWORD", "MQTT_INGEST_PASSWORD"):
        assert f"${{{secret}:?" in text, f"{secret} must be required, not defaulted"
