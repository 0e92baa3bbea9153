"""schemathesis, generating requests from openapi.yaml, against a live server and worker.

Bounded (a fixed seed and a few dozen cases per operation) so that CI stays short. It fails on
any 5xx and on any response that does not match the documented schema.
"""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import serve_api

ROOT = Path(__file__).resolve().parent.parent
ST = Path(sys.executable).with_name("st")
CASES_PER_OPERATION = "25"


def test_schemathesis_finds_no_server_error_or_schema_mismatch(redis_url, start_worker, tmp_path):
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
                "not_a_server_error,response_schema_conformance",
                "--max-examples",
                CASES_PER_OPERATION,
                "--seed",
                "1",
                "--generation-database",
                "none",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= 200, output[-2000:]
    print(f"schemathesis: {generated.group(0)}")
