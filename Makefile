# sqlagent — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint format flower bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## build .venv with sqlagent (editable) and the dev tools; gives .venv/bin/sqlagent

demo: $(STAMP) ## run the demo at http://127.0.0.1:8000 (no Redis, PostgreSQL or LLM key needed)
	$(BIN)/sqlagent demo

test: $(STAMP) ## run the whole test suite (real PostgreSQL and Redis on localhost)
	$(BIN)/pytest -n 2 --dist loadgroup -q

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check api worker shared cli tests
	$(BIN)/ruff format --check api worker shared cli
	$(BIN)/mypy api worker shared cli

format: $(STAMP) ## apply ruff's formatting and fixes
	$(BIN)/ruff format api worker shared cli tests
	$(BIN)/ruff check --fix api worker shared cli tests

flower: $(STAMP) ## Flower on :5555 (needs SQLAGENT_BROKER_URL; FLOWER_BASIC_AUTH=user:pass)
	@test -n "$$SQLAGENT_BROKER_URL" || { echo "set SQLAGENT_BROKER_URL=redis://HOST:PORT/N"; exit 2; }
	@test -n "$$FLOWER_BASIC_AUTH$$FLOWER_UNAUTHENTICATED_API" || \
		echo "note: without FLOWER_BASIC_AUTH=user:pass Flower's pages are open and its HTTP API refuses requests"
	@# Credentials stay in the environment (Flower reads FLOWER_BASIC_AUTH itself), not on the command line.
	$(BIN)/celery -A worker.celery_app flower --port=5555

bench: $(STAMP) ## the benchmark suite (bench/README.md)
	$(BIN)/python -m bench

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
