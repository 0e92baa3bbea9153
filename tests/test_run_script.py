"""End to end: scripts/run.py starts Redis, the workers and the API, restarts whichever of them
dies (kill -9), gives up on one that keeps dying, and stops them all on SIGTERM."""

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
import requests
import yaml
from rq import Worker

from devtools.probes import accepts_connections, answers_ok, free_port
from devtools.processes import wait_until
from scripts.run import REDIS_MAXMEMORY, RestartPolicy, blas_threads
from tests.support.jobs import ARTICLE_JOB

pytestmark = pytest.mark.process  # every test here runs scripts/run.py

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60  # seconds to wait for a process to come (back) up; not a timing assertion


class RunScript:
    """scripts/run.py in a subprocess, its output kept to read the children's pids from."""

    def __init__(self, var_dir: Path, **env: str) -> None:
        self.api_port, self.redis_port = free_port(), free_port()
        base = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env = {
            **base,
            "WORKERS": "1",
            "WEB_CONCURRENCY": "1",
            "PORT": str(self.api_port),
            "REDIS_PORT": str(self.redis_port),
            "VAR_DIR": str(var_dir),
            "STOP_TIMEOUT": "20",
            # This checkout's devtools, not those of wherever the venv's editable install points.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")])),
            **env,
        }
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))
                sys.stdout.write(line)  # shown by pytest when a test fails

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api_port}{path}"

    def redis(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=5)

    def pid(self, name: str) -> int:
        """The pid of the latest ``name`` the supervisor started."""
        pids = re.findall(rf"\| started {re.escape(name)} \(pid (\d+)\)", self.output)
        assert pids, f"{name} was never started"
        return int(pids[-1])

    def wait(self, check, what: str) -> None:
        """Wait for ``check``, failing at once if run.py exits first."""
        wait_until(check, START_TIMEOUT, self.process, what)

    def wait_until_ready(self) -> None:
        """Wait for the API to be up (/healthz) and able to serve (/readyz: Redis and a worker)."""
        for endpoint in ("/healthz", "/readyz"):
            self.wait(lambda e=endpoint: answers_ok(self.url(e)), f"GET {endpoint}")

    def kill(self, name: str) -> int:
        """SIGKILL the latest ``name``; wait until the supervisor has started another one."""
        old = self.pid(name)
        os.kill(old, signal.SIGKILL)
        self.wait(lambda: self.pid(name) != old, f"{name} restarted")
        return old

    def wait_until_registered(self, name: str) -> None:
        """Wait until the latest ``name`` has registered with rq (it is past its start-up)."""
        pid, conn = self.pid(name), self.redis()
        self.wait(lambda: pid in {w.pid for w in Worker.all(connection=conn)}, f"{name} in rq")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> int:
        """SIGTERM, as `docker stop` or a process manager would send; return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def run_script(tmp_path: Path) -> Iterator:
    """Factory: start scripts/run.py with one worker and one web process; stop it afterwards."""
    started: list[RunScript] = []

    def start(**env: str) -> RunScript:
        started.append(RunScript(tmp_path / "var", **env))
        return started[-1]

    yield start
    for script in started:  # only after a failed test: a passing one has stopped it already
        script.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunScript]:
    """One `make run` with two workers, shared by the tests that kill its processes."""
    script = RunScript(tmp_path_factory.mktemp("var"), WORKERS="2")
    try:
        script.wait_until_ready()
        yield script
    finally:
        script.stop()


def test_restart_delay_doubles_up_to_a_cap_and_gives_up_at_the_limit():
    policy = RestartPolicy(limit=8, window=60)
    delays = [policy.delay_after_exit(now) for now in range(7)]
    assert delays == [0.5, 1, 2, 4, 8, 10, 10]
    assert policy.delay_after_exit(7) is None  # the 8th exit within 60 s


def test_restart_delay_starts_over_after_a_window_without_exits():
    policy = RestartPolicy(limit=3, window=60)
    assert [policy.delay_after_exit(now) for now in (0, 1)] == [0.5, 1]
    assert policy.delay_after_exit(100) == 0.5
    assert policy.delay_after_exit(101) == 1


def test_embedded_redis_has_a_memory_cap_and_never_evicts(stack):
    config = stack.redis().config_get("maxmemory*")
    assert int(config["maxmemory"]) > 0
    assert config["maxmemory-policy"] == "noeviction"


def test_compose_redis_has_the_same_memory_cap_and_policy():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = " ".join(compose["services"]["redis"]["command"])
    assert f"--maxmemory ${{REDIS_MAXMEMORY:-{REDIS_MAXMEMORY}}}" in command
    assert "--maxmemory-policy noeviction" in command


def test_a_killed_worker_is_restarted_and_registers(stack):
    old = stack.kill("worker.1")

    stack.wait_until_registered("worker.1")
    assert "worker.1 exited with code -9; restarting it in 0.5 s" in stack.output
    assert answers_ok(stack.url("/healthz")) and answers_ok(stack.url("/readyz"))
    assert gone(old)


def test_a_killed_api_is_restarted_without_its_old_workers(stack):
    web_workers = [p.pid for p in psutil.Process(stack.pid("api")).children()]
    assert web_workers
    stack.kill("api")

    # Orphaned gunicorn workers would keep answering on the old socket: they must be gone first.
    stack.wait(lambda: all(gone(p) for p in web_workers), "old gunicorn workers gone")
    stack.wait(lambda: answers_ok(stack.url("/healthz")), "GET /healthz after the restart")
    assert psutil.Process(stack.pid("api")).children()
    assert "api exited with code -9; restarting it in 0.5 s" in stack.output


def test_a_killed_redis_comes_back_with_its_data(stack):
    response = requests.post(stack.url("/v1/jobs"), json=ARTICLE_JOB, timeout=10)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    stack.redis().set("run-script-test", "kept")

    stack.kill("redis")
    stack.wait(lambda: "redis ready again" in stack.output, "redis ready again")

    assert stack.redis().get("run-script-test") == b"kept"  # replayed from the AOF
    stack.wait(lambda: answers_ok(stack.url("/readyz")), "GET /readyz after the restart")
    response = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == job_id


def test_sigterm_stops_everything_in_order_even_after_a_restart(run_script, tmp_path):
    script = run_script(REDIS_MAXMEMORY="64mb")
    script.wait_until_ready()
    assert int(script.redis().config_get("maxmemory")["maxmemory"]) == 64 * 1024**2
    assert (tmp_path / "var" / "redis" / "appendonly.aof").exists()
    script.kill("worker.1")
    script.wait_until_registered("worker.1")
    children = [p.pid for p in script.descendants()]
    assert len(children) >= 4  # redis, worker, gunicorn master and its worker

    assert script.stop() == 0
    assert all(gone(p) for p in children)
    assert not accepts_connections(script.api_port)
    assert not accepts_connections(script.redis_port)
    lines = script.lines
    last_app = max(i for i, line in enumerate(lines) if re.match(r"run +\| (api|worker)", line))
    assert lines.index("run      | redis exited with code 0") > last_app


def test_gives_up_when_a_process_keeps_exiting(run_script):
    # gunicorn cannot even read its config with this PORT, so the API exits at every start.
    script = run_script(PORT="not-a-port", RESTART_LIMIT="3")
    assert script.process.wait(START_TIMEOUT) == 1
    assert "api exited with code 1; restarting it in 0.5 s" in script.output
    assert "api exited with code 1; restarting it in 1 s" in script.output
    assert "api exited with code 1, 3 times within 60 s; giving up" in script.output
    assert "redis exited with code 0" in script.output
    assert not accepts_connections(script.redis_port)
    assert all(gone(script.pid(name)) for name in ("redis", "worker.1"))


def test_uses_redis_url_without_starting_redis(run_script, redis_url, redis_conn, tmp_path):
    script = run_script(REDIS_URL=redis_url)

    script.wait_until_ready()
    assert not accepts_connections(script.redis_port)
    assert not (tmp_path / "var").exists()

    assert script.stop() == 0
    assert not accepts_connections(script.api_port)
    assert redis_conn.ping()  # the external Redis is left running


def test_training_workers_share_the_cores_for_blas_unless_told_otherwise():
    cores = len(os.sched_getaffinity(0))
    assert blas_threads({}, 1) == {"OPENBLAS_NUM_THREADS": str(cores)}
    assert blas_threads({}, cores) == {"OPENBLAS_NUM_THREADS": "1"}
    assert blas_threads({}, 4 * cores) == {"OPENBLAS_NUM_THREADS": "1"}
    assert blas_threads({"OPENBLAS_NUM_THREADS": "3"}, 2) == {}
    assert blas_threads({}, 0) == {}
