# Two commands on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: quickstart test lint typecheck layers pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(VENV)/.installed $@

quickstart: $(VENV)/.installed  ## install and run the demo: data → run → registered model
	$(BIN)/loopml quickstart

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

layers: $(VENV)/.installed-dev
	$(BIN)/lint-imports

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

test: lint typecheck layers pytest  ## install dev extras, then ruff, mypy, import-linter, pytest

bench: $(VENV)/.installed-dev  ## side-by-side benchmarks against the peers (see docs/benchmarks.md)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/tracking.py
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/serving.py --soak
	$(BIN)/python benchmarks/drift.py
	$(BIN)/python benchmarks/automl.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/server.py

clean:
	rm -rf $(VENV) loopml-demo .pytest_cache .mypy_cache .ruff_cache
