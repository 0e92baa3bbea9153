# Everything runs from .venv/bin; nothing needs activating.
# The stamp lives inside .venv, so deleting .venv (or a fresh clone) rebuilds it, and so does
# any change to pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test lint format bench bench-serve openapi openapi-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -e '.[bench]'
	touch $@

run: $(STAMP)  ## Redis (embedded unless REDIS_URL is set), rq workers and the API
	$(BIN)/python scripts/run.py

test: lint  ## lint, then the whole test suite
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE pin old OpenBLAS builds to a safe kernel on some machines
# and slow a current NumPy; the benchmark unsets both and prints the kernel it then runs.
bench: $(BENCH_STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python -m bench

# Single-row prediction latency and throughput under wrk, against a bare route.
bench-serve: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench.serve

openapi: $(STAMP)  ## regenerate openapi.yaml from the code
	$(BIN)/python -m service.openapi > openapi.yaml.tmp
	mv openapi.yaml.tmp openapi.yaml

openapi-check: $(STAMP)  ## fail if openapi.yaml is not what the code generates
	@tmp=$$(mktemp); trap 'rm -f "$$tmp"' EXIT; \
	$(BIN)/python -m service.openapi > "$$tmp" || exit 1; \
	diff -u openapi.yaml "$$tmp" || { echo "openapi.yaml is stale: run make openapi" >&2; exit 1; }

# Leaves var/ alone: it holds the Redis data of `make run`.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info openapi.yaml.tmp
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
