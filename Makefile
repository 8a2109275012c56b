# Lakestream: the two commands are `make demo` and `make test`; both set up what they need first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The venv is rebuilt only when the dependency set changes.
DEPS_HASH := $(shell cat pyproject.toml constraints.txt 2>/dev/null | sha1sum | cut -c1-12)
VENV_STAMP := $(VENV)/.installed-$(DEPS_HASH)
PYTEST_ARGS ?=
# Two pytest workers, one test file each at a time (a file shares its Spark session and fixtures): the
# suite waits on JVMs and brokers much of the time, so two keep both cores busy.
TEST_WORKERS ?= 2

.PHONY: help setup jars browser demo test test-long test-fast lint format lock kafka-start kafka-stop kafka-status \
        mlflow-ui mlflow-stop airflow airflow-stop dashboard dashboard-stop stop clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(VENV_STAMP) jars  ## create .venv, install the pinned Python set, resolve the JVM jars (idempotent)

$(VENV_STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: python3.11 not found; install Python 3.11 (e.g. apt-get install python3.11 python3.11-venv)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || \
	  { echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); Lakestream needs 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "error: could not create $(VENV); install the venv module (apt-get install python3-venv)"; exit 1; }
	@echo "==> installing the pinned Python set into $(VENV) (first time: a few minutes)"
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]' || { echo "error: pip install failed (see above); check access to PyPI and re-run make setup"; exit 1; }
	@rm -f $(VENV)/.installed-* && touch $@

jars: $(VENV_STAMP)  ## resolve Delta, the Spark Kafka connector and the Kafka broker jars with Maven
	@$(BIN)/lakestream setup jars

browser:  ## Debian's Chromium, which the dashboard's browser test drives headless (installed once)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  echo "==> installing Debian's chromium (the dashboard test opens the page in it, headless)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "error: chromium is missing and this user cannot install it; run: apt-get install chromium"; exit 1; fi; \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $$SUDO apt-get update -q >/dev/null && \
	    $$SUDO apt-get install -y -q chromium >/dev/null; } || \
	    { echo "error: could not install chromium with apt-get (see above); install it and re-run"; exit 1; }; }

demo: setup  ## set up, start the local stack and run the end-to-end demo
	@$(BIN)/lakestream demo

test: setup browser  ## run the whole test suite (unit, integration, dags, e2e) against real components
	@$(BIN)/python -m pytest -m "not long" -n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

test-long: setup  ## the full-size variants left out of make test (200k-event stream crash test: ~10 min)
	@$(BIN)/python -m pytest -m long $(PYTEST_ARGS)

test-fast: setup  ## unit tests only
	@$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

lint: setup  ## ruff
	@$(BIN)/ruff check .

format: setup
	@$(BIN)/ruff format . && $(BIN)/ruff check --fix .

lock: $(VENV_STAMP)  ## re-pin constraints.txt from the installed set (after changing pyproject.toml)
	@$(BIN)/python -m pip freeze --exclude-editable | grep -v '^lakestream' > constraints.txt
	@echo "constraints.txt updated; commit it"

kafka-start: setup  ## start the local Kafka broker and create the topics
	@$(BIN)/lakestream kafka start

kafka-stop:  ## stop the local Kafka broker
	@test -x $(BIN)/lakestream && $(BIN)/lakestream kafka stop || true

kafka-status: setup
	@$(BIN)/lakestream kafka status

mlflow-ui: setup  ## serve the MLflow UI over the local tracking store (http://127.0.0.1:5000)
	@$(BIN)/lakestream mlflow start

mlflow-stop:
	@test -x $(BIN)/lakestream && $(BIN)/lakestream mlflow stop || true

airflow: setup  ## start Airflow standalone (UI on http://127.0.0.1:8080, SQLite, the project's dags/)
	@$(BIN)/lakestream airflow start

airflow-stop:  ## stop Airflow standalone
	@test -x $(BIN)/lakestream && $(BIN)/lakestream airflow stop || true

dashboard: setup  ## serve the monitoring dashboard (http://127.0.0.1:8050) in the background
	@$(BIN)/lakestream dashboard start

dashboard-stop:
	@test -x $(BIN)/lakestream && $(BIN)/lakestream dashboard stop || true

stop:  ## stop everything the project started (Airflow, dashboard, cluster, stream, MLflow, broker; the demo's too)
	@test -x $(BIN)/lakestream && { $(BIN)/lakestream stop; LAKESTREAM_ENV=demo $(BIN)/lakestream stop; } || true

clean: stop  ## remove all local state (var/); keeps .venv and .jars
	rm -rf var spark-warehouse metastore_db derby.log test-artifacts
