# The two commands a newcomer needs: `make demo` (the main job) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

PARLIAMENT := .venv-parliament
PARLIAMENT_STAMP := $(PARLIAMENT)/.installed

.PHONY: test lint demo bench mutation clean

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

## mutation: mutation testing of the functions that keep the README's promises (mutmut; not
## in CI: about 40 minutes on 2 cores); prints mutants run/killed/surviving per module and
## fails under 90% killed in any (docs/TESTING.md)
MUTATION_SCOPE := \
	'sweep_core.validation.*' 'sweep_core.planning.*' 'sweep_core.space.*' 'sweep_core.rng.*' \
	'sweep_core.layout.*' 'sweep_core.records.*' 'sweep_core.runs.*' 'sweep_core.tables.*' \
	'runtime.handlers.parent.*' 'runtime.handlers.worker.*' \
	'runtime.adapters.s3.*' 'runtime.adapters.local_store.*' 'sweep_sdk.sigv4.*' \
	'sweep_sdk.compact.x_compact_run__*' 'sweep_sdk.compact.x__compact_partition__*' \
	'sweep_sdk.compact.x*_Check*' 'sweep_sdk.compact.x__value_bytes__*' \
	'sweep_sdk.compact.x__write_record__*' 'sweep_sdk.compact.x__finish_interrupted__*' \
	'scripts.rollback.x_deployed_artifacts__*' 'scripts.rollback.x__artifact_key__*' \
	'scripts.rollback.x__slot_of__*' 'scripts.rollback.x*Deployed*config__*'
mutation: $(STAMP)
	$(BIN)/pip install --quiet -r requirements-mutation.txt
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 $(MUTATION_SCOPE) > mutation.log 2>&1 || (tail -c 2000 mutation.log; exit 1)
	$(BIN)/python scripts/mutation_report.py

clean:
	rm -rf $(VENV) $(PARLIAMENT) .sweep build *.egg-info mutants mutation.log
