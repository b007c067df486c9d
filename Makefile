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

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/run_all.py --json bench-results.json

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
