"""schemathesis, generating requests from openapi.yaml, against a live server and worker.

Every check is on (``--checks all``): no 5xx, responses, status codes, content types and
headers as documented, requests the document allows accepted and those it forbids refused,
405 with ``Allow`` for undocumented methods. The stateful phase follows the document's links
from created jobs and datasets to real resources. tests/schemathesis_hooks.py holds the only
exceptions: refusals for rules OpenAPI 3.0 cannot state, and URLs over the length limit.

Bounded (a fixed seed and a few dozen cases per operation) so that CI stays short.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.apps import serve_api

ROOT = Path(__file__).resolve().parent.parent
ST = Path(sys.executable).with_name("st")
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
CASES_PER_OPERATION = "20"


def test_schemathesis_finds_no_failure_with_every_check(redis_url, start_worker, tmp_path):
    start_worker()  # so that /readyz is ready (its 503 is by design when no worker runs)
    # Small budgets: generated jobs that pass validation train in milliseconds.
    env = {
        "MAX_TRAINING_FLOPS": "1e7",
        "DEFAULT_MAX_RUNTIME_SECONDS": "2",
        "RATE_LIMIT_SUBMIT": "100000/minute",
        "RATE_LIMIT": "100000/minute",
        "MAX_ACTIVE_JOBS": "100000",
    }
    with serve_api(redis_url, **env) as base:
        result = subprocess.run(
            [
                str(ST),
                "run",
                str(ROOT / "openapi.yaml"),
                "--url",
                base,
                "--checks",
                "all",
                "--max-examples",
                CASES_PER_OPERATION,
                "--seed",
                "1",
                "--generation-database",
                "none",
                "--no-color",
            ],
            cwd=tmp_path,
            # The hooks import the service's schemas and limits.
            env={**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": str(HOOKS)},
            capture_output=True,
            text=True,
            timeout=600,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= 200, output[-2000:]
    # The links lead from POST /v1/jobs and /v1/datasets to the resources they create.
    links = re.search(r"API Links:\s+(\d+) covered", output)
    assert links and int(links.group(1)) >= 5, output[-2000:]
    print(f"schemathesis: {generated.group(0)}, {links.group(0)}")
