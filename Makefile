# Two set-up-free entry points: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check dsic tests benchmarks projects
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m dsic.cli demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check dsic tests benchmarks projects

clean:
	rm -rf $(VENV) runs .pytest_cache
