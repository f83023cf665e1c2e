# Yidai developer commands. Every target bootstraps uv (into .tools/) when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
export AIRFLOW__CORE__LOAD_EXAMPLES := False
# pytest worker processes for `make test` (pytest-xdist; each test file runs whole on one worker,
# so a module's servers and clusters start once)
TEST_WORKERS ?= 2

.PHONY: help bootstrap install test lint format demo docs bench clean screenshots

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

bootstrap: $(UV)  ## Install uv if it is missing

install: bootstrap  ## Create .venv with every extra and the dev tools, from uv.lock
	$(UV) sync --all-extras --frozen

test: install  ## Install, then run the whole test suite (TEST_WORKERS=2 processes)
	bash scripts/install-browser.sh
	bash scripts/install-postgres.sh
	bash scripts/install-redis.sh
	$(UV) run pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: install  ## ruff (lint + format check), mypy and the import contracts (layers, no cycles)
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy yidai simulator features models scoring_service dashboards dags
	$(UV) run lint-imports

format: install  ## Apply ruff fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

docs: install  ## Regenerate the generated docs (contracts, notebooks rendered to HTML)
	$(UV) run yidai contracts --write docs/data-contracts.md
	$(UV) run python scripts/render_notebooks.py

screenshots: install  ## Regenerate docs/screenshots/*.png from a demo home (YIDAI_HOME or var)
	bash scripts/install-browser.sh
	$(UV) run --frozen python scripts/screenshots.py --home $${YIDAI_HOME:-var}

demo: install  ## Install, then run the whole pipeline on the demo simulation (DEMO_SERVE=0: stop after it)
	bash scripts/demo.sh

clean:  ## Remove local state (var/)
	rm -rf var
