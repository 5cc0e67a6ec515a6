# The two commands of the README:
#   make demo   set up .venv and run the main job (fednot run) on the embedded MNIST-5k
#   make test   set up .venv and run the lint, type checks and the test suite
# CI also runs `make test-long`: the tests marked `long` (minutes each), which `make test` skips.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-long lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,flower]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fednot run --jobs 2 --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

test: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal

test-long: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m long

clean:
	rm -rf $(VENV) runs .fednot-cache
