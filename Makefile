# The two commands a new user needs: `make demo` and `make test`. Both create
# .venv from nothing: torch 2.13.0 first (the CPU build), then kiln and its
# test dependencies.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kiln-installed

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/kiln demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check kiln tests benchmarks examples tools

bench: $(STAMP)
	$(BIN)/python benchmarks/decode.py
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/pipelines.py
	$(BIN)/python benchmarks/quantize.py
	$(BIN)/python benchmarks/speculative.py
	$(BIN)/python benchmarks/linear.py
	$(BIN)/python benchmarks/serve.py
	$(BIN)/python benchmarks/cstep.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
