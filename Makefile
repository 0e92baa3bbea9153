# Everything runs from .venv/bin; nothing needs activating.
# The stamps live inside .venv, so deleting .venv (or a fresh clone) rebuilds it, and so does
# any change to a lock file. `make run` installs the runtime lock only; `make test` adds the
# test tools. Both install exact versions of every transitive dependency (`make lock` renews
# them from the pins in pyproject.toml).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
COMPILE = $(BIN)/pip-compile -q --strip-extras --no-header --annotation-style line \
	--no-emit-index-url --no-emit-find-links

.PHONY: help run test test-fast lint format bench bench-serve bench-events bench-data bench-scale bench-shutdown openapi openapi-check lock clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.lock
	$(BIN)/pip install --no-deps -e .
	touch $@

$(TEST_STAMP): $(STAMP) requirements-test.lock
	$(BIN)/pip install -r requirements-test.lock
	touch $@

$(BENCH_STAMP): $(TEST_STAMP)
	$(BIN)/pip install -e '.[bench]'
	touch $@

run: $(STAMP)  ## Redis (embedded unless REDIS_URL is set), rq workers and the API
	$(BIN)/python scripts/run.py

test: lint  ## lint, then the whole test suite
	$(BIN)/pytest -q

test-fast: $(TEST_STAMP)  ## the engine and unit tests: no servers or workers, nothing slow
	$(BIN)/pytest -q -m "not process and not slow"

lint: $(TEST_STAMP)  ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(TEST_STAMP)  ## ruff fix and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE pin old OpenBLAS builds to a safe kernel on some machines
# and slow a current NumPy; the benchmark unsets both and prints the kernel it then runs.
# bench.xor_service first: the article's XOR job through the service, against the article's loop;
# `python -m bench` prints the last line.
bench: $(BENCH_STAMP)  ## the engine against PyTorch and JAX-jit, interleaved, and the article's loop
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python -m bench.xor_service
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python -m bench

# Single-row prediction latency and throughput under wrk, against a bare route.
bench-serve: $(STAMP)  ## prediction latency and throughput under wrk
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench.serve

# 100 SSE clients on one training job: their lag, and what they cost single-row predictions.
# Its clients are httpx-sse, a test tool.
bench-events: $(TEST_STAMP)  ## SSE followers of a running job: lag and predict latency
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench.events

# A 94 MB CSV read by pandas.read_csv, by our parser and through POST /v1/datasets, interleaved.
bench-data: $(BENCH_STAMP)  ## CSV ingestion against pandas.read_csv: throughput and peak memory
	$(BIN)/python -m bench.data

# 200 small jobs through 1 worker, then 2 (separate processes sharing only Redis), against the
# engine alone; also the reaper's pass at 10,000 jobs, submit throughput and Redis bytes per job.
bench-scale: $(STAMP)  ## workers' jobs/s and scaling, reaper cost, submit rate, bytes per job
	$(BIN)/python -m bench.scale

# The figure behind the k8s workers' terminationGracePeriodSeconds (deploy/k8s/README.md).
bench-shutdown: $(STAMP)  ## how long a worker takes to checkpoint and requeue after SIGTERM
	$(BIN)/python -m bench.shutdown

openapi: $(STAMP)  ## regenerate openapi.yaml from the code
	$(BIN)/python -m service.openapi > openapi.yaml.tmp
	mv openapi.yaml.tmp openapi.yaml

openapi-check: $(STAMP)  ## fail if openapi.yaml is not what the code generates
	@tmp=$$(mktemp); trap 'rm -f "$$tmp"' EXIT; \
	$(BIN)/python -m service.openapi > "$$tmp" || exit 1; \
	diff -u openapi.yaml "$$tmp" || { echo "openapi.yaml is stale: run make openapi" >&2; exit 1; }

# The test lock is resolved first, so the runtime lock is the same versions, less the test tools.
lock: $(STAMP)  ## renew requirements*.lock from the pins in pyproject.toml
	$(BIN)/pip install -q pip-tools==7.6.2
	$(COMPILE) --extra test -o requirements-test.lock pyproject.toml
	$(COMPILE) -c requirements-test.lock -o requirements.lock pyproject.toml

# Leaves var/ alone: it holds the Redis data of `make run`.
clean:  ## remove the venv and caches (not var/, the data of make run)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info openapi.yaml.tmp
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
