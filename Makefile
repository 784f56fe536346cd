# The two commands of the README: `make run` and `make test`. Both install first when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit test-integration lint bench clean

$(STAMP): pyproject.toml
	@./scripts/install-system-packages.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/limitsync up --simulate

test: install
	$(BIN)/ruff check schemas streams consumers limitsync tests bench
	$(BIN)/mypy
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest -m "not integration"

test-integration: install
	$(BIN)/pytest -m integration

lint: install
	$(BIN)/ruff check schemas streams consumers limitsync tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench.replay_bench
	$(BIN)/python -m bench.pipeline_bench
	$(BIN)/python -m bench.kafka_replay_bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis out
