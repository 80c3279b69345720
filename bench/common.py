"""What every benchmark shares: the machine it ran on, results on disk, an MQTT publisher.

Figures go to bench/results.json (a flat JSON object, merged run after run, so one benchmark can
be re-run alone) and BENCHMARKS.md (rewritten from results.json with the machine's description).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
REPORT = ROOT / "BENCHMARKS.md"
SECTIONS = ROOT / "bench" / "sections"


def machine() -> dict[str, str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    mosquitto = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False).stdout
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_gib:.0f} GiB",
        "python": platform.python_version(),
        "os": platform.platform(),
        "mosquitto": mosquitto.splitlines()[0] if mosquitto else "?",
    }


def load_results() -> dict[str, Any]:
    if RESULTS.exists():
        return dict(json.loads(RESULTS.read_text()))
    return {}


def save_results(new: dict[str, Any]) -> dict[str, Any]:
    results = load_results()
    results.update(new)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    return results


def save_section(name: str, markdown: str) -> None:
    """A benchmark's part of BENCHMARKS.md, kept until that benchmark runs again."""
    SECTIONS.mkdir(parents=True, exist_ok=True)
    (SECTIONS / f"{name}.md").write_text(markdown.strip() + "\n")


def write_report() -> None:
    info = machine()
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); every figure below comes from a real run on the machine",
        "described here, and the same figures are in `bench/results.json`. Ceilings are measured in the same run,",
        "on the same machine, so the ratios compare like with like.",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- run at: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "",
    ]
    for section in sorted(SECTIONS.glob("*.md")):
        lines.append(section.read_text())
    REPORT.write_text("\n".join(lines))


def progress(label: str, done: int, total: int) -> None:
    print(f"\r{label}: {done:,}/{total:,}", end="", flush=True)
    if done >= total:
        print()


# Messages published and not yet acknowledged by the broker, at most (see Publisher.publish_all).
MAX_BACKLOG = 20_000


class Publisher:
    """A head-end system publishing on behalf of many meters over one connection, QoS 1.

    A HES account may publish under every meter's topic; one connection keeps the publisher's
    own cost low, so the figures measure the broker and the ingest, not 10,000 Python sockets.
    """

    def __init__(self, client: mqtt.Client, max_inflight: int = 2000) -> None:
        self.client = client
        self.acked = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(0)
        client.on_publish = self._on_publish
        client.on_connect = lambda c, u, f, reason, p: self._connected.set()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        with self._lock:
            self.acked += 1

    def start(self) -> None:
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("publisher could not connect")

    def publish_all(self, messages: Iterable[tuple[str, bytes]]) -> int:
        sent = 0
        base = self.acked
        for topic_name, payload in messages:
            # paho numbers a message when it is queued, and packet ids have 16 bits: with more
            # than 65,535 queued, ids repeat and the publisher stalls. Keep the backlog well below.
            while sent - (self.acked - base) >= MAX_BACKLOG:
                time.sleep(0.001)
            self.client.publish(topic_name, payload, qos=1)
            sent += 1
        return sent

    def wait_acked(self, count: int, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while self.acked < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
