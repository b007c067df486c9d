PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint typecheck clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,cli]'
	@touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy --strict midjourney_async

test: lint typecheck
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m midjourney_async demo --out out

# A few minutes on 2 cores; `make bench BENCH_ARGS=--quick` for a shorter run,
# `BENCH_ARGS="--only scale"` for one benchmark.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/run_all.py --json bench-results.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
