#!/usr/bin/env bash
# Create .venv and install the pinned requirements. On a fresh Debian machine, as root, install
# the system packages a virtualenv needs first; otherwise say what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! command -v "$PYTHON" >/dev/null; then
  echo "bootstrap: $PYTHON not found; install Python 3.11 (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python 3.11 or newer is needed; $PYTHON is $("$PYTHON" -V)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ]; then
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
      "$PYTHON" -m venv .venv
    else
      echo "bootstrap: cannot create a virtualenv; install it with: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
fi
echo "bootstrap: installing pinned requirements into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
