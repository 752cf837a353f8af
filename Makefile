# The README's two commands: `make demo` (set up + quick start) and `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On a machine without an NVIDIA GPU, pin the CPU build of PyTorch so setup never pulls a CUDA build.
# Override with `make TORCH_CONSTRAINT= ...` to keep whatever torch your environment resolves.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_CONSTRAINT ?= $(if $(HAS_GPU),,-c constraints-cpu.txt)
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint browser install dev dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Before 0.1.0 the distribution was called `hrm`; an old editable install of it is dropped first so
# that only one distribution owns the `hrm` command.
$(VENV)/.installed: pyproject.toml constraints-cpu.txt | $(BIN)/python
	$(BIN)/python -m pip uninstall --quiet --yes hrm 2>/dev/null || true
	$(BIN)/python -m pip install --quiet $(TORCH_CONSTRAINT) -e ".[agent]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet $(TORCH_CONSTRAINT) -e ".[dev]"
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

# The CPU quick start (`hrm demo`): builds a 4x4 Sudoku dataset, trains a fresh HRM on it (about a
# minute), solves new puzzles segment by segment and writes runs/demo/report.html.
demo: $(VENV)/.installed
	$(BIN)/hrm demo --dir runs/demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# Debian's Chromium for the viewer's browser tests. Outside CI they skip with a reason if it cannot be
# had; under CI=true this step, and the tests, fail instead, so a green CI has exercised the viewer.
browser: $(VENV)/.installed-dev
	@if [ "$$CI" = "true" ]; then \
		bash tests/viz/install_browser.sh; \
	else \
		bash tests/viz/install_browser.sh || echo "Chromium unavailable: the browser tests will skip"; \
	fi

# Full suite: fast and slow tests (GPU tests skip themselves without CUDA).
# Exit code 5 (no test collected) is not a failure of the code under test.
test: lint browser
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The sdist and the wheel, in dist/. --no-isolation builds with this environment's setuptools, so it
# needs no network; tests/test_dist.py installs such a wheel into a fresh environment and runs it.
dist: $(VENV)/.installed-dev
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	@ls -l dist

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
