# maas: `make serve` and `make test` do every set-up step on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A CPU build by default; GPU users install their CUDA build of torch first (any torch>=2.4 is kept).
TORCH_SPEC ?= torch==2.13.0
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install dev serve test lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install -q --disable-pip-version-check -e .
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

dev: $(VENV)/.dev

serve: install
	$(BIN)/maas serve --host $(HOST) --port $(PORT)

lint: dev
	$(BIN)/ruff check maas tests scripts migrations
	$(BIN)/lint-imports
	$(BIN)/mypy maas

test: dev
	$(BIN)/ruff check maas tests scripts migrations
	$(BIN)/lint-imports
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('$(PG_URL)'.replace('+psycopg',''), connect_timeout=3).close()" 2>/dev/null; then \
		echo "PostgreSQL answers: registry, job-queue and API tests also run against it"; \
		MAAS_TEST_DATABASE_URL="$(PG_URL)" $(BIN)/pytest -q $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL does not answer at $(PG_URL): SQLite only"; \
		$(BIN)/pytest -q $(PYTEST_ARGS); \
	fi

format: dev
	$(BIN)/ruff check --fix maas tests scripts
	$(BIN)/ruff format maas tests scripts

bench: install
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_serve.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
