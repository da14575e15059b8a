# Two commands do everything on a fresh machine: `make eval` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
N      ?= 8
ARGS   ?=

.PHONY: install eval test test-slow lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

## Run the offline eval matrices in evals/ with the built-in local models;
## ARGS go to pytest: make eval ARGS="--model gpt-4o-mini-2024-07-18".
eval: $(STAMP)
	$(BIN)/pytest evals/ -n $(N) -rsx $(ARGS)

## Run the project's test suite; -rs prints why a test skipped (Chromium missing, say).
## The slowest end-to-end runs (marked slow) are `make test-slow`; .ci/run runs both.
test: $(STAMP)
	$(BIN)/pytest tests/ -n 2 -rs -m "not slow" $(ARGS)

test-slow: $(STAMP)
	$(BIN)/pytest tests/ -n 2 -rs -m slow $(ARGS)

## Lint, format check and type check (ruff, mypy).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Run the benchmarks; writes benchmarks/results.json.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache reports/*.json* reports/*.md reports/*.html reports/episodes
