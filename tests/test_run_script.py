"""End to end: scripts/run.py starts Redis, a worker and the API, and stops them all on SIGTERM."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.probes import accepts_connections, answers_ok, free_port
from devtools.processes import wait_until

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60


@pytest.fixture
def run_script(tmp_path: Path):
    """Factory: start scripts/run.py with one worker and one web process; stop it afterwards."""
    started: list[subprocess.Popen] = []

    def start(**env: str) -> subprocess.Popen:
        base = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env = {
            **base,
            "WORKERS": "1",
            "WEB_CONCURRENCY": "1",
            "VAR_DIR": str(tmp_path / "var"),
            "STOP_TIMEOUT": "20",
            **env,
        }
        process = subprocess.Popen([sys.executable, "scripts/run.py"], cwd=ROOT, env=env)
        started.append(process)
        return process

    yield start
    for process in started:  # only after a failed test: a passing one has stopped it already
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until_ready(process: subprocess.Popen, base_url: str) -> None:
    """Wait for the API to be up (/healthz) and able to serve (/readyz: Redis and a worker)."""
    for endpoint in ("/healthz", "/readyz"):
        url = base_url + endpoint
        wait_until(lambda url=url: answers_ok(url), START_TIMEOUT, process, f"GET {endpoint}")


def stop(process: subprocess.Popen) -> int:
    """Send SIGTERM as `docker stop` or a process manager would; return the exit status."""
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


def test_starts_embedded_redis_and_stops_everything(run_script, tmp_path):
    api_port, redis_port = free_port(), free_port()
    process = run_script(PORT=str(api_port), REDIS_PORT=str(redis_port))

    wait_until_ready(process, f"http://127.0.0.1:{api_port}")
    assert accepts_connections(redis_port)
    assert (tmp_path / "var" / "redis" / "appendonly.aof").exists()

    assert stop(process) == 0
    assert not accepts_connections(api_port)
    assert not accepts_connections(redis_port)


def test_uses_redis_url_without_starting_redis(run_script, redis_url, redis_conn, tmp_path):
    api_port, unused_redis_port = free_port(), free_port()
    process = run_script(PORT=str(api_port), REDIS_PORT=str(unused_redis_port), REDIS_URL=redis_url)

    wait_until_ready(process, f"http://127.0.0.1:{api_port}")
    assert not accepts_connections(unused_redis_port)
    assert not (tmp_path / "var").exists()

    assert stop(process) == 0
    assert not accepts_connections(api_port)
    assert redis_conn.ping()  # the external Redis is left running
