# The two commands of the README:
#   make run    set up everything, create a demo node in ./.inkless-demo and serve it on :8080
#   make test   set up everything the tests need and run them
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := .inkless-demo
HOST   ?= 127.0.0.1
PORT   ?= 8080
PYTEST_ARGS ?=
# The tests run in a random order (pytest-randomly); the header prints "Using --randomly-seed=N".
# Replay that order with PYTEST_ARGS="-p randomly --randomly-seed=N", or keep file order with "-p no:randomly".
# Test processes: the suite waits on fsync, child processes, a browser and real-time fax calls (which sleep
# between 20 ms packets), so four workers keep two cores busy; more starve the real-time fax calls of CPU
# (G.711 training then fails). --no-loadscope-reorder keeps the order of
# tests/conftest.py (real-time files first, then slow ones) instead of xdist's "most tests first".
TEST_WORKERS ?= 4

.PHONY: run test system-deps browser-test-deps lint typecheck bench mutants fuzz clean
# axe-core for the accessibility browser tests, at the version pinned in its package-lock.json.
AXE := tests/e2e/axe/node_modules/axe-core/axe.min.js

run: $(VENV)/.installed
	@test -f $(DEMO)/inkless.db -o -f $(DEMO)/inkless.toml || $(BIN)/inkless init --data $(DEMO) --demo --url http://$(HOST):$(PORT)
	$(BIN)/inkless serve --data $(DEMO) --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-dev system-deps browser-test-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# Mutation testing of the security modules (docs/testing.md): MUTANTS="merkle policy" picks modules,
# MUTANTS_JOBS the parallel mutants (default 1: the machine is shared).
MUTANTS ?=
MUTANTS_JOBS ?= 1
# MUTANTS_ONLY a partial run: only the mutants whose names match these patterns (e.g. "*probe__mutmut_*").
MUTANTS_ONLY ?=
mutants: $(VENV)/.installed-dev system-deps
	$(BIN)/python scripts/mutants --jobs $(MUTANTS_JOBS) $(foreach p,$(MUTANTS_ONLY),--only '$(p)') $(MUTANTS)

# Fuzzing (docs/testing.md): FUZZ_SECONDS per target (default 60), FUZZ="sip mime" picks targets.
FUZZ ?=
FUZZ_SECONDS ?= 60
fuzz: $(VENV)/.installed-dev
	$(BIN)/pip install --quiet -e ".[dev,fuzz]"
	$(BIN)/python scripts/fuzz --seconds $(FUZZ_SECONDS) $(FUZZ)

system-deps:
	@scripts/install-system-deps

browser-test-deps: $(AXE)

$(AXE): tests/e2e/axe/package.json tests/e2e/axe/package-lock.json
	npm ci --prefix tests/e2e/axe --no-audit --no-fund --ignore-scripts
	@touch $@

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info .mutants .fuzz
