"""What every benchmark shares: the machine it ran on, results on disk, progress.

Figures go to bench/results.json (a flat JSON object, merged run after run, so one benchmark can
be re-run alone) and BENCHMARKS.md (rewritten from results.json with the machine's description).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

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
