"""Run the Procfile under honcho with a pid file, so that `make stop` can end it from elsewhere.

python scripts/supervise.py          # foreground, until Ctrl-C (what `make run` does)
python scripts/supervise.py --stop   # stop a running supervisor and everything it started
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIDFILE = ROOT / "var" / "run" / "supervisor.pid"


def stop() -> int:
    try:
        pid = int(PIDFILE.read_text())
    except (OSError, ValueError):
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        PIDFILE.unlink(missing_ok=True)
        return 0
    print(f"supervise: stopping the stack (pid {pid})")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    PIDFILE.unlink(missing_ok=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true")
    args = parser.parse_args()
    if args.stop:
        return stop()
    PIDFILE.parent.mkdir(parents=True, exist_ok=True)
    PIDFILE.write_text(str(os.getpid()))
    os.chdir(ROOT)
    honcho = str(ROOT / ".venv" / "bin" / "honcho")
    # exec keeps our pid, so the pid file names honcho itself.
    os.execv(honcho, [honcho, "-f", "Procfile", "start"])  # noqa: S606 - fixed argv, no shell


if __name__ == "__main__":
    sys.exit(main())
