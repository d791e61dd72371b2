# Two commands for a newcomer: `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The virtualenv lives outside the checkout and is keyed by the hash of requirements.txt,
# so a fresh clone (CI) reuses it and a changed requirements.txt gets a new one.
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-16)
VENV_HOME ?= $(HOME)/.cache/modelyard/venvs
VENV := $(VENV_HOME)/$(REQ_HASH)
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export MLFLOW_ALLOW_PICKLE_DESERIALIZATION := false
export DJANGO_SETTINGS_MODULE := backend.config.settings
# openapi-python-client pins a typer that requirements.txt cannot hold: its own virtualenv, keyed the same way.
CLIENT_VENV := $(VENV_HOME)/client-$(shell sha256sum requirements-client.txt | cut -c1-16)
export OPENAPI_PYTHON_CLIENT := $(CLIENT_VENV)/bin/openapi-python-client

.PHONY: help venv client-generator system-run system-test redis setup run test lint audit format bench clean

help:
	@echo "make run    set up and start web + worker + beat on http://127.0.0.1:8000"
	@echo "make test   set up, lint and run the whole test suite"
	@echo "make bench  run the benchmarks under bench/"
	@echo "make audit  known vulnerabilities of the pinned requirements (needs PyPI's JSON API or OSV)"

$(VENV)/.installed: requirements.txt
	@mkdir -p $(VENV_HOME)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

venv: $(VENV)/.installed

# The generator tests/test_generated_client.py runs on the live schema.
$(CLIENT_VENV)/.installed: requirements-client.txt
	@mkdir -p $(VENV_HOME)
	@test -x $(CLIENT_VENV)/bin/python || $(PYTHON) -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CLIENT_VENV)/bin/python -m pip install --quiet -r requirements-client.txt
	@touch $@

client-generator: $(CLIENT_VENV)/.installed

system-run:
	@bash scripts/ensure_system_packages.sh redis-server

system-test:
	@bash scripts/ensure_system_packages.sh redis-server postgresql chromium prometheus iproute2

redis: system-run
	@bash scripts/ensure_redis.sh

# Everything `make run` needs before the processes start.
setup: venv redis
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_demo_admin

run: setup
	$(BIN)/python manage.py bootstrap_models
	$(BIN)/honcho start -f Procfile

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python scripts/audit.py

# Known vulnerabilities of the pinned requirements; fails when the vulnerability service cannot be reached.
audit: venv
	$(BIN)/python scripts/audit.py --required

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: venv client-generator system-test setup lint
	$(BIN)/python -m pytest
	TEST_DATABASE=postgres $(BIN)/python -m pytest -m postgres

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf var/ .pytest_cache .ruff_cache
