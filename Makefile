# EasyMemory: `make serve` runs the product, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8100

.PHONY: serve test test-fast docs lint bench-write clean-testdata

# One line per stage, so a first run (a few minutes of installing) never looks stuck.
$(BIN)/python:
	@echo "creating the environment in $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.stamp-runtime: requirements.txt pyproject.toml | $(BIN)/python
	@echo "installing the runtime packages (first run: a few minutes)"
	@$(BIN)/pip install --quiet -r requirements.txt
	@$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.stamp-dev: requirements-dev.txt $(VENV)/.stamp-runtime
	@echo "installing the test and documentation packages"
	@$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

serve: $(VENV)/.stamp-runtime
	@$(BIN)/easymemory serve --port $(PORT)

# Tests use their own data directory (own embedded PostgreSQL) and the machine's Redis.
test: export EASYMEMORY_DATA_DIR ?= $(CURDIR)/.testdata
test: export EASYMEMORY_REDIS_URL ?= redis://127.0.0.1:6379/15
test: $(VENV)/.stamp-dev
	$(BIN)/ruff check .
	PYTHONPATH=$(CURDIR) $(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The inner loop: everything but the tests marked slow (browser, servers, worker pipeline, fuzzing).
test-fast: export EASYMEMORY_DATA_DIR ?= $(CURDIR)/.testdata
test-fast: export EASYMEMORY_REDIS_URL ?= redis://127.0.0.1:6379/15
test-fast: $(VENV)/.stamp-dev
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow" $(PYTEST_ARGS)

# The documentation site (docs/ and the generated API reference) into site/.
docs: $(VENV)/.stamp-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check .
	PYTHONPATH=$(CURDIR) $(BIN)/mypy

bench-write: $(VENV)/.stamp-runtime
	$(BIN)/python bench/write_latency.py

# Team topology on this machine without containers (external PostgreSQL over TCP, own Redis, two
# web processes, an embeddings worker and an LLM worker); Ctrl-C stops it. See docs/team-deployment.md.
.PHONY: team-demo
team-demo: $(VENV)/.stamp-runtime
	$(BIN)/python deploy/team_demo.py
