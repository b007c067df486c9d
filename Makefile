PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The suite once more on the lowest declared dependency versions (constraints-min.txt),
# on the lowest supported Python where one is installed.
PYTHON_MIN ?= $(shell for p in python3.10 $(PYTHON); do $$p -c '' 2>/dev/null && echo $$p && break; done)
VENV_MIN := .venv-min
STAMP_MIN := $(VENV_MIN)/.installed

.PHONY: test test-min demo bench lint typecheck clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,cli]'
	@touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy --strict midjourney_async tests

test: lint typecheck
	$(PY) -m pytest

$(STAMP_MIN): pyproject.toml constraints-min.txt
	@test -x $(VENV_MIN)/bin/python || $(PYTHON_MIN) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_MIN)/bin/python -m pip install --quiet -c constraints-min.txt -e '.[dev,cli]'
	@touch $(STAMP_MIN)

test-min: $(STAMP_MIN)
	$(VENV_MIN)/bin/python -m pytest -p no:cacheprovider

demo: $(STAMP)
	$(PY) -m midjourney_async demo --out out

# A few minutes on 2 cores; `make bench BENCH_ARGS=--quick` for a shorter run,
# `BENCH_ARGS="--only scale"` for one benchmark.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/run_all.py --json bench-results.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENV_MIN) out .mypy_cache .ruff_cache .pytest_cache
