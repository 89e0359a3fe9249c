# The two commands: `make run` and `make test`. Each bootstraps .venv by itself.
PYTHON ?= python3
PORT   ?= 8080
VENV   := .venv
PY     := $(VENV)/bin/python
# Reinstall when the project's metadata changes.
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test lint unit bench clean

run: $(STAMP_RUN)
	$(PY) deploy/quickstart.py --port $(PORT)

test: $(STAMP_TEST) lint
	$(PY) -m pytest

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check agent collector checks tests deploy
	$(VENV)/bin/mypy

# Each benchmark prints its figures and exits 1 when it misses its target.
bench: $(STAMP_TEST)
	$(PY) tests/benchmarks/bench_ingest.py; i=$$?; \
	$(PY) tests/benchmarks/bench_agent_footprint.py; f=$$?; \
	$(PY) tests/benchmarks/bench_engine.py; e=$$?; \
	$(PY) tests/benchmarks/bench_metrics.py; m=$$?; \
	exit $$((i | f | e | m))

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "watchkeeper needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

$(STAMP_RUN): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[collector]'
	@touch $@

$(STAMP_TEST): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	@touch $@ $(STAMP_RUN)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
