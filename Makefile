# wearcast: `make demo` and `make test` bootstrap everything from python3 (3.11+) and the lock file.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast test-slow lint format bench clean serve test-integration notebooks docs

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced ## Create .venv from uv.lock (pinned versions) and install wearcast into it

demo: install ## Simulate a fleet, train, register, score its last day, print the risk list
	$(VENV)/bin/wearcast demo

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_CHROMIUM := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

.PHONY: browser
browser: ## Install Debian's chromium (for the headless report test) when it is missing
	@command -v chromium >/dev/null || $(APT_CHROMIUM) || { $(SUDO) apt-get update && $(APT_CHROMIUM); }

test: install lint browser ## Lint, the test suite (real-data runs are marked slow and excluded), the notebooks, the docs, then the integration test
	$(VENV)/bin/pytest -q -m "not slow and not integration"
	$(MAKE) --no-print-directory notebooks
	$(MAKE) --no-print-directory docs
	$(MAKE) --no-print-directory test-integration

notebooks: install ## Run the three notebooks top to bottom (nbmake; each simulates its own fleet and MLflow store in outputs/notebooks/)
	$(VENV)/bin/pytest -q --nbmake --nbmake-timeout=300 -p no:cacheprovider notebooks/

docs: install ## Build the documentation site into site/ with MkDocs Material (strict: a broken link fails)
	$(UV) sync --frozen --inexact --group docs
	$(VENV)/bin/mkdocs build --strict

test-fast: install browser ## Unit tests only (no Prefect, no MLflow end-to-end)
	$(VENV)/bin/pytest -q -m "not slow and not e2e and not integration"

test-slow: install ## Tests on ../shared/data (real bearings), slow
	$(VENV)/bin/pytest -q -m slow

lint: install ## ruff lint and format check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy features models pipelines

format: install ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install ## Benchmarks on ../shared/data (prints ratios against named baselines; adds tsfel/tsfresh)
	$(UV) sync --frozen --inexact --group bench
	$(VENV)/bin/python benchmarks/pronostia.py ../shared/data/femto-pronostia
	$(VENV)/bin/python benchmarks/cmapss.py ../shared/data/cmapss-fd001
	$(VENV)/bin/python benchmarks/simulated_backtest.py
	$(VENV)/bin/python benchmarks/cwru.py ../shared/data/cwru-12k
	$(VENV)/bin/python benchmarks/femto_health_indicators.py ../shared/data/femto-pronostia
	$(VENV)/bin/python benchmarks/trend_slopes_ablation.py ../shared/data/femto-pronostia
	$(VENV)/bin/python benchmarks/vibration_throughput.py
	$(VENV)/bin/python benchmarks/feature_libraries.py
	$(VENV)/bin/python benchmarks/telemetry_throughput.py
	$(VENV)/bin/python benchmarks/two_process.py
	$(VENV)/bin/python benchmarks/store_append.py
	$(VENV)/bin/python benchmarks/hourly_judge.py
	$(VENV)/bin/python benchmarks/scoring_throughput.py
	$(VENV)/bin/python benchmarks/dask_scaling.py --machines 1000 --days 20 --partition 100 --rounds 3
	$(VENV)/bin/python benchmarks/fleet_sizing.py --machines 1e8

clean: ## Remove the virtualenvs, outputs and local stores (mlruns/ keeps its .gitignore)
	rm -rf $(VENV) .tools outputs .prefect
	find mlruns -mindepth 1 ! -name .gitignore -exec rm -rf {} +

serve: install ## Run the scheduled deployments in one process (prefect.serve; see docs/deployment.md)
	$(VENV)/bin/wearcast serve

test-integration: install ## Prefect server + worker + MLflow server on loopback ports: deploy, train, score
	$(VENV)/bin/pytest -q -m integration -p no:cacheprovider tests/test_integration.py
