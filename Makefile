# Two commands do everything on a fresh machine (Python >= 3.10 with venv):
#   make demo   -- install, then run the default small drift meta-training (runs/)
#   make test   -- install, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint benchmark bench-gpu

$(BIN)/discover: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev,brax]"
	touch $(BIN)/discover

install: $(BIN)/discover

demo: install
	$(BIN)/discover demo

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -ra -n auto --maxprocesses 4 --dist loadfile --durations=25

benchmark: install
	$(BIN)/python benchmarks/ppo_throughput.py

# The GPU suite (BENCHMARKS.md): under 10 minutes on one GPU; `--toy` runs anywhere.
bench-gpu: install
	$(BIN)/python benchmarks/gpu_suite.py
