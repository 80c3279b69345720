# The MDMS in two commands: `make run` (the whole stack with demo data) and `make test`.
# Both install what is missing and start what is not running; running them again is harmless.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_METERS ?= 200
export DEMO_HISTORY_DAYS ?= 190
export PYTHONUNBUFFERED := 1

.PHONY: help install services run stop test lint format typecheck migrations-check bench lake-query constraints clean

help:
	@echo "make run        start everything (services, migrate, demo data, web, workers, simulator) on http://127.0.0.1:8000"
	@echo "make test       install, start the services, run the whole suite against them"
	@echo "make bench      run the benchmarks; figures to BENCHMARKS.md and bench/results.json"
	@echo "make lake-query consumption per region per day from the Parquet data lake (DuckDB); SQL=file.sql for another query"
	@echo "make lint       ruff (format check + lint), mypy and the import layers contract (lint-imports)"
	@echo "make services   start only PostgreSQL, MongoDB, Redis and Mosquitto"
	@echo "make stop       stop what this project started, and nothing else"

$(STAMP): requirements.txt requirements-dev.txt constraints.txt scripts/bootstrap.sh
	@PYTHON=$(PYTHON) bash scripts/bootstrap.sh
	@touch $(STAMP)

install: $(STAMP)

services: install
	@$(BIN)/python scripts/services.py up

run: services
	@$(BIN)/python manage.py migrate --noinput -v0
	@$(BIN)/python manage.py mqtt_sync
	@$(BIN)/python manage.py seed_demo --if-empty --meters $(DEMO_METERS)
	@$(BIN)/python scripts/supervise.py

stop:
	@if [ -x $(BIN)/python ]; then $(BIN)/python scripts/supervise.py --stop; $(BIN)/python scripts/services.py down; fi

test: services
	@$(BIN)/python scripts/services.py test-tools
	@mkdir -p var/log && $(BIN)/lint-imports --no-cache > var/log/lint-imports.txt || (cat var/log/lint-imports.txt; echo "the import layers contract is broken: see [tool.importlinter] in pyproject.toml"; exit 1)
	@$(BIN)/python manage.py makemigrations --check --dry-run -v0 || (echo "migrations are missing: run manage.py makemigrations" && exit 1)
	@$(BIN)/python -m pytest -m "not faults"
	@# The fault tests (docs/reliability.md) break private servers of their own for minutes: they run
	@# after the rest. pytest's exit code 5 (no test collected) fails make like any other failure.
	@$(BIN)/python -m pytest -m faults

lint: install
	@$(BIN)/ruff format --check .
	@$(BIN)/ruff check .
	@$(BIN)/mypy
	@$(BIN)/lint-imports --no-cache

format: install
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

migrations-check: services
	@$(BIN)/python manage.py makemigrations --check --dry-run

bench: services
	@$(BIN)/python -m bench

lake-query: install
	@$(BIN)/python manage.py lake_query $(if $(SQL),--sql $(SQL))

constraints: install
	@$(BIN)/pip freeze --exclude-editable | grep -v -E '^(pip|setuptools|wheel)==' \
	  | sed '1i # Every transitive dependency, pinned (pip freeze of requirements-dev.txt). Regenerate with `make constraints`.' > constraints.txt

clean: stop
	rm -rf var/
