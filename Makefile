# `make run` starts SafeRouter; `make test` runs lint, types and every test.
# Both set up what they need on a fresh machine (a venv in .venv; for tests, node
# packages too). `make run` installs the runtime dependencies only (and the optional
# OpenTelemetry exporter): the test tools (mypy, playwright, ruff …) are `make test`'s.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# one stamp per layer: a `make run` venv gains the dev group at the first `make test`,
# and either is redone when pyproject.toml changes
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
NODE_E2E := tests/e2e/node
ARGS ?=

.PHONY: run test lint bench clean chromium postgresql wheel

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==26.0.1"

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[otel]"
	touch $@

$(DEV): pyproject.toml $(RUNTIME)
	$(BIN)/python -m pip install --quiet --group dev
	touch $@

$(NODE_E2E)/node_modules/.package-lock.json: $(NODE_E2E)/package-lock.json
	npm ci --prefix $(NODE_E2E) --no-audit --no-fund

run: $(RUNTIME)
	$(BIN)/saferouter serve $(ARGS)

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# the TEE module's pure cores must be covered line for line
PURE_TEE := saferouter/tee/abi.py,saferouter/tee/kds.py,saferouter/tee/verify.py,saferouter/tee/validate.py

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# the PostgreSQL store's tests start a throwaway cluster of Debian's binaries (no system
# service); where they cannot be installed those tests skip on one line (fail under CI=true)
postgresql:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } || echo "PostgreSQL could not be installed: the PostgreSQL store's tests will skip"

# The gate is reached without ../shared/testdata (demo-CA reports and chains); the tests
# that need the data skip on one line naming SAFEROUTER_TESTDATA, or fail under CI=true.
test: $(DEV) $(NODE_E2E)/node_modules/.package-lock.json chromium postgresql lint
	$(BIN)/coverage run -m pytest -q tests/unit/tee
	$(BIN)/coverage report --include='$(PURE_TEE)' --fail-under=100
	$(BIN)/pytest --ignore=tests/unit/tee --durations=15

# A release wheel, built from a fresh copy of the files git tracks: setuptools reuses
# ./build/lib, so an in-place `pip wheel .` ships a module deleted since the last build
# (and any untracked file), and the wheel would not measure as the commit it came from.
wheel: $(DEV)
	rm -rf dist/source && mkdir -p dist/source
	git ls-files -z | xargs -0 cp --parents -t dist/source
	$(BIN)/python -m pip wheel --quiet --no-build-isolation --no-deps -w dist dist/source
	rm -rf dist/source

bench: $(DEV)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) $(NODE_E2E)/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
