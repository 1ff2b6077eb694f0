# Set-up and run targets. `make run` and `make test` install what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOME_DIR ?= $(CURDIR)/var
DATA ?=

.PHONY: help run test install airflow-ui airflow stop-endpoint clean

# Airflow's settings for this checkout and state folder, shared by the airflow targets.
AIRFLOW_ENV = export FRAUD_DETECTION_HOME=$(HOME_DIR) AIRFLOW_HOME=$(HOME_DIR)/airflow \
	  AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins \
	  AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__PARALLELISM=4 \
	  AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=8080 AIRFLOW__API__BASE_URL=http://127.0.0.1:8080 \
	  AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:8080/execution/ \
	  GX_ANALYTICS_ENABLED=false

## List the targets.
help:
	@awk '/^## /{doc=substr($$0, 4); next} /^[a-z-]+:/{if (doc) printf "  %-14s %s\n", substr($$1, 1, length($$1)-1), doc; doc=""}' $(MAKEFILE_LIST)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]}: set PYTHON=/path/to/python3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Install, then run the main job on the local backend (DATA=path/to/transactions.csv.gz to use a file).
run: install
	$(BIN)/fraud-detection --home $(HOME_DIR) run $(DATA)

## Install, then run the test suite.
test: install
	$(BIN)/python -m pytest -rs

## Start Airflow (API server and UI, scheduler, DAG processor, triggerer) on http://127.0.0.1:8080 over the main job's metadata database. Ctrl-C stops it.
# The four components start one by one rather than through `airflow standalone`, for two reasons.
# Standalone (Airflow 3.3.2) starts its components as `airflow` from PATH, so it fails with
# "No such file or directory: 'airflow'" unless the virtualenv is activated. It also gives the
# scheduler and the triggerer log servers on ports 8793 and 8794 that listen on every interface.
# --skip-serve-logs turns those servers off, and the API server reads task logs from the files
# in $(HOME_DIR)/airflow/logs.
airflow-ui: install
	@$(AIRFLOW_ENV); \
	$(BIN)/airflow db migrate > /dev/null || exit 1; \
	pids=; \
	trap 'kill $$pids 2> /dev/null; wait' EXIT; \
	trap 'exit 130' INT TERM; \
	$(BIN)/airflow api-server & pids="$$pids $$!"; \
	$(BIN)/airflow scheduler --skip-serve-logs & pids="$$pids $$!"; \
	$(BIN)/airflow dag-processor & pids="$$pids $$!"; \
	$(BIN)/airflow triggerer --skip-serve-logs & pids="$$pids $$!"; \
	echo "Airflow is starting on http://127.0.0.1:8080 (process ids$$pids). Log in as admin with the password" \
	  "in $(HOME_DIR)/airflow/simple_auth_manager_passwords.json.generated. Ctrl-C stops all four components."; \
	wait

## Run an Airflow command over the main job's state, for example ARGS='dags test weekly_batch_aggregates 2018-04-16' (reruns the week ending that Monday).
airflow: install
	@$(AIRFLOW_ENV); $(BIN)/airflow $(ARGS)

## Stop the local endpoint that `make run` left serving.
stop-endpoint: install
	$(BIN)/fraud-detection --home $(HOME_DIR) stop-endpoint

## Remove the virtualenv and all local state in var/.
clean:
	rm -rf $(VENV) var

## Create .venv-feast with Feast 0.67.0, the peer that the benchmarks in bench/ run against.
# Feast needs pandas < 3 and the project pandas 3, so the peer gets its own virtualenv. The
# benchmarks start it as a subprocess (.venv-feast/bin/python bench/feast_peer.py).
.PHONY: bench-feast
bench-feast: bench/requirements-feast.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]}: set PYTHON=/path/to/python3.11"'
	test -x .venv-feast/bin/python || $(PYTHON) -m venv .venv-feast
	@echo '*' > .venv-feast/.gitignore
	.venv-feast/bin/python -m pip install --quiet --upgrade pip
	.venv-feast/bin/python -m pip install --quiet -r bench/requirements-feast.txt
	.venv-feast/bin/python -c 'import feast, pandas; print(f"feast {feast.__version__}, pandas {pandas.__version__} in .venv-feast")'
