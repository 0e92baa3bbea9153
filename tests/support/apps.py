"""The API for a test: in process for the Flask test client, or under gunicorn."""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask

from devtools.probes import answers_ok, free_port
from devtools.processes import stop_all, wait_until
from scripts.run import API_COMMAND, local
from service import create_app

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 10
START_TIMEOUT = 30


def new_app(redis_url: str, **config) -> Flask:
    """The app in testing mode against ``redis_url``, with ``config`` on top."""
    return create_app({"REDIS_URL": redis_url, "TESTING": True, **config})


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
