# The two commands a newcomer needs: `make demo` (the main job) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

PARLIAMENT := .venv-parliament
PARLIAMENT_STAMP := $(PARLIAMENT)/.installed

.PHONY: test lint demo bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# parliament (IAM policy linter) lives apart: it needs pkg_resources from an older setuptools
$(PARLIAMENT_STAMP): requirements-parliament.txt
	$(PYTHON) -m venv $(PARLIAMENT)
	$(PARLIAMENT)/bin/pip install --quiet -r requirements-parliament.txt
	touch $(PARLIAMENT_STAMP)

## test: unit, property, handler and end-to-end tests (IAM policies through parliament, the
## Lambda artifacts in a clean Python 3.12), then ruff, mypy and the layer contracts
test: $(STAMP) $(PARLIAMENT_STAMP)
	$(BIN)/pytest
	$(MAKE) lint

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## demo: a real sweep end to end on this machine, then the summary and failure-rate queries
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## bench: every performance figure side by side with its baseline (benchmarks/RESULTS.md);
## the Lithops comparison needs `$(BIN)/pip install -r requirements-bench.txt` first
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(PARLIAMENT) .sweep build *.egg-info
