# Two commands do everything on a fresh machine (Python >= 3.10 with venv):
#   make demo   -- install the package, then run the default small drift meta-training (runs/)
#   make test   -- install it with the dev tools and brax, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Each install is a stamp in the venv, redone when pyproject.toml changes. The demo needs
# the package alone; the tests add the `dev` extra (pytest, ruff, the notebook runner)
# and `brax` (tests/envs/test_brax.py) on top of it, in the same venv.
PACKAGE := $(VENV)/.installed-package
TEST_TOOLS := $(VENV)/.installed-test-tools

.PHONY: install install-test demo test lint wheel benchmark bench-gpu gpu-check

$(PACKAGE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e .
	touch $@

$(TEST_TOOLS): $(PACKAGE)
	$(BIN)/pip install -e ".[dev,brax]"
	touch $@

install: $(PACKAGE)

install-test: $(TEST_TOOLS)

demo: install
	$(BIN)/discover demo

test: install-test
	$(BIN)/ruff check .
	$(BIN)/pytest -ra -n auto --maxprocesses 4 --dist loadfile --durations=25

lint: install-test
	$(BIN)/ruff check .

# The wheel a notebook installs in Colab (notebooks/README.md): dist/rl_discovery-*.whl.
wheel: install
	$(BIN)/pip wheel --no-deps -w dist .

benchmark: install
	$(BIN)/python benchmarks/ppo_throughput.py

# The GPU suite (BENCHMARKS.md): under 10 minutes on one GPU; `--toy` runs anywhere.
bench-gpu: install
	$(BIN)/python benchmarks/gpu_suite.py

# Before a GPU lease: every stage of benchmarks/gpu_session.py at toy size on this CPU
# (the default suite runs one of them; tests/test_gpu_session.py).
gpu-check: install-test
	DISCOVERY_GPU_STAGE_TESTS=1 $(BIN)/pytest -ra -n auto --maxprocesses 4 --dist loadfile tests/test_gpu_session.py
