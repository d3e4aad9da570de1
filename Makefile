# cvfl — two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every dependency, hash-pinned: runtime + the test extra + the build backend, with the CPU
# build of PyTorch (torch==2.13.0; a looser spec pulls a multi-GB CUDA build). `make lock`
# regenerates it (and requirements/runtime.lock, which the image installs) from pyproject.toml.
LOCK   := requirements/dev.lock

.PHONY: demo test lint typecheck proto bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cvfl demo --workdir $(or $(WORKDIR),demo-run)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

proto: $(STAMP)
	$(BIN)/python tools/regen_proto.py

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

lock: $(BIN)/python
	$(BIN)/python tools/lock.py

clean:
	rm -rf $(VENV) demo-run .pytest_cache .mypy_cache .ruff_cache
