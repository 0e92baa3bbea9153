"""Redis Sentinel: the API and the workers follow the master that the sentinels report, and a
failover (the master killed mid-training) costs 503s for a few seconds, never a 500 or a job.

Real processes throughout: a master and its replica, three sentinels, gunicorn and an rq
worker, all given REDIS_SENTINELS and a REDIS_URL where nothing listens.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests

import store
from devtools import embedded_redis
from devtools.probes import answers_ok, free_port
from devtools.processes import stop_all, wait_until
from scripts.run import WORKER_COMMAND, local
from store.config import SentinelConfig, SharedConfig
from store.connection import NoReplicasError
from tests.support.apps import ROOT, STOP_TIMEOUT, new_app, serve_api
from tests.support.jobs import GOOD_JOB, long_job
from tests.support.live import final, past_epoch, status, submit, wait_for
from tests.support.resume import FAST, assert_same_as_uninterrupted, wait_for_checkpoint
from tests.support.sentinel import MASTER_NAME, sentinel_group, wait_for_failover

pytestmark = pytest.mark.process

NOWHERE = "redis://127.0.0.1:1/0"  # REDIS_URL must not be what the processes use
POLL_SECONDS = 0.2
RECOVERY_DEADLINE = 60  # seconds; a bound on a broken failover, not a timing assertion


@pytest.fixture
def group(tmp_path):
    with sentinel_group(tmp_path) as running:
        yield running


def sentinel_env(group) -> dict[str, str]:
    return {"REDIS_SENTINELS": group.sentinels_env, "REDIS_MASTER_NAME": MASTER_NAME}


def poll(session: requests.Session, base: str, job_id: str) -> list[tuple[str, int, dict]]:
    """A read and a write: GET the running job, POST a small job. ``(what, status, body)``."""
    answers = []
    for what, call in (
        ("get", lambda: session.get(f"{base}/v1/jobs/{job_id}", timeout=30)),
        ("post", lambda: session.post(f"{base}/v1/jobs", json=GOOD_JOB, timeout=30)),
    ):
        response = call()
        answers.append((what, response.status_code, response.json(), response.headers))
    return answers


@pytest.mark.slow
def test_a_master_killed_mid_training_fails_over_with_503s_and_loses_no_job(group):
    env = sentinel_env(group)
    worker = subprocess.Popen(
        local(WORKER_COMMAND), cwd=ROOT, env={**os.environ, **FAST, **env, "REDIS_URL": NOWHERE}
    )
    try:
        with (
            serve_api(NOWHERE, **env, MAX_ACTIVE_JOBS="1000") as base,
            requests.Session() as session,
        ):
            session.trust_env = False
            running_job = long_job(epochs=1500)
            running = session.post(f"{base}/v1/jobs", json=running_job, timeout=10).json()["id"]
            accepted = [running]
            for _ in range(3):  # these wait behind the running one
                accepted.append(
                    session.post(f"{base}/v1/jobs", json=GOOD_JOB, timeout=10).json()["id"]
                )
            wait_for(base, running, past_epoch(100), "epoch 100")

            old_master = group.master_port()
            group.servers[old_master].kill()  # SIGKILL: no AOF flush, no goodbye to replicas
            killed = time.monotonic()
            seen: list[tuple[float, str, int]] = []
            recovered = failed_over = None
            while recovered is None or time.monotonic() - recovered < 1:
                assert time.monotonic() - killed < RECOVERY_DEADLINE, seen
                for what, code, body, headers in poll(session, base, running):
                    seen.append((round(time.monotonic() - killed, 2), what, code))
                    assert code in (200, 202, 503), (what, code, body)
                    if code == 503:
                        assert body["code"] == 503 and "Redis" in body["message"], body
                        assert int(headers["Retry-After"]) > 0
                    elif what == "post":
                        accepted.append(body["id"])
                if failed_over is None and group.master_port() not in (old_master, None):
                    failed_over = time.monotonic()
                if recovered is None and all(code != 503 for _, _, code in seen[-2:]):
                    recovered = time.monotonic()
                time.sleep(POLL_SECONDS)
            failed_over = failed_over or wait_for_failover(group, old_master)

            for job_id in accepted:
                record = wait_for(base, job_id, final, "an end")
                assert record["status"] == "finished", record
            assert_same_as_uninterrupted(base, running, running_job)
    finally:
        stop_all([worker], STOP_TIMEOUT)

    unavailable = [when for when, _, code in seen if code == 503]
    print(
        f"failover: the sentinels reported the replica as master {failed_over - killed:.2f} s "
        f"after the kill; the API answered 503 {len(unavailable)} times (the last at "
        f"{max(unavailable, default=0):.2f} s) and 2xx again from {recovered - killed:.2f} s; "
        f"{len(accepted)} jobs accepted, all finished"
    )
    assert worker.returncode == 0  # rq's loop lived through the failover and stopped on SIGTERM


def test_the_sentinel_settings_come_from_the_environment():
    env = {
        "REDIS_SENTINELS": "10.0.0.1:26379, sentinel-2.redis:26380,",
        "REDIS_MASTER_NAME": "main",
        "REDIS_SENTINEL_PASSWORD": "s3",
        "REDIS_PASSWORD": "m4",
    }
    assert SharedConfig.from_env(env).sentinel == SentinelConfig(
        sentinels=(("10.0.0.1", 26379), ("sentinel-2.redis", 26380)),
        master_name="main",
        sentinel_password="s3",
        password="m4",
    )
    assert SharedConfig.from_env({"REDIS_SENTINELS": ""}).sentinel is None
    with pytest.raises(ValueError, match="'10.0.0.1' is not host:port"):
        SharedConfig.from_env({"REDIS_SENTINELS": "10.0.0.1"})


class Interrupted(Exception):
    """Raised by a signal handler in the middle of a blocking read."""


def test_a_read_cut_short_leaves_no_reply_behind_for_the_next_command(group):
    """A worker's SIGTERM or stop-job signal lands while it blocks in Redis (BLPOP): the
    connection must not go back to the pool with that reply still to come."""
    conn = store.connect(sentinel=SentinelConfig.from_env(sentinel_env(group)))
    conn.set("probe", "value")

    def interrupt(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(Interrupted):
            conn.blpop(["nothing-ever-comes"], timeout=2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert conn.ping() is True  # not the BLPOP's nil, two seconds later
    assert conn.get("probe") == b"value"
    store.close(conn)


@pytest.fixture
def replica_url(redis_url, tmp_path):
    """A replica of the session Redis: what a client still talking to a demoted master meets."""
    master = urlsplit(redis_url)
    args = ("--replicaof", master.hostname, str(master.port), "--save", "", "--appendonly", "no")
    with embedded_redis.running(tmp_path, args, STOP_TIMEOUT) as url:
        yield url


@pytest.fixture
def lonely_master_url(tmp_path):
    """A master with min-replicas-to-write 1 and no replica: what a promoted replica is until
    another replica has joined it."""
    args = ("--min-replicas-to-write", "1", "--save", "", "--appendonly", "no")
    with embedded_redis.running(tmp_path, args, STOP_TIMEOUT) as url:
        yield url


WRITES = (
    ("post", "/v1/jobs", {"json": GOOD_JOB}),
    ("post", "/v1/datasets", {"json": {"X": [[0.0], [1.0]], "y": [[0.0], [1.0]]}}),
    ("post", "/v1/webhooks/secret", {}),
)


@pytest.mark.parametrize("url_fixture", ["replica_url", "lonely_master_url"])
def test_writes_redis_refuses_for_now_are_503_not_500(url_fixture, request):
    app = new_app(request.getfixturevalue(url_fixture))
    client = app.test_client()
    try:
        for method, path, kwargs in WRITES:
            response = getattr(client, method)(path, **kwargs)
            body = response.get_json()
            assert response.status_code == 503, (path, body)
            assert body["code"] == 503 and "retry later" in body["message"], body
            assert response.headers["Retry-After"] == "5"
        assert client.get("/v1/jobs").status_code == 200  # reads still work
    finally:
        app.extensions["redis"].close()


def test_a_write_refused_in_a_script_raises_what_it_would_outside_one(
    replica_url, lonely_master_url
):
    script = "return redis.call('SET', KEYS[1], '1')"
    for url, error in (
        (replica_url, redis.exceptions.ReadOnlyError),
        (lonely_master_url, NoReplicasError),
    ):
        conn = store.connect(url)
        with pytest.raises(error):
            store.eval_script(conn, script, ["key"])
        with pytest.raises(error):
            conn.set("key", "1")
        conn.close()


def test_a_worker_trains_on_while_the_master_waits_for_its_replicas(
    live_server, start_worker, redis_url, redis_conn
):
    """NOREPLICAS (min-replicas-to-write after a failover, before a replica rejoins) holds the
    worker's writes back like an outage: the job neither fails nor loses a bit."""
    start_worker(**FAST)
    job = long_job(epochs=2000)
    job_id = submit(live_server, job)
    wait_for(live_server, job_id, past_epoch(100), "epoch 100")
    redis_conn.config_set("min-replicas-to-write", 1)
    try:
        probe = store.connect(redis_url)
        with pytest.raises(NoReplicasError):  # the worker's writes are refused from now on
            probe.set("x", 1)
        probe.close()
        time.sleep(1)  # several flushes and checkpoints are refused meanwhile
        assert status(live_server, job_id)["status"] == "started"
    finally:
        redis_conn.config_set("min-replicas-to-write", 0)
    record = wait_for(live_server, job_id, final, "an end")
    assert record["status"] == "finished", record
    assert_same_as_uninterrupted(live_server, job_id, job)


def wait_for_log(log, text: str, process: subprocess.Popen) -> None:
    """Wait until the worker has logged ``text``; fail if it exits first."""
    deadline = time.monotonic() + RECOVERY_DEADLINE
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"never logged {text!r}:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_a_worker_outlasts_a_master_that_refuses_even_rqs_records(
    live_server, redis_url, redis_conn, tmp_path
):
    """NOREPLICAS for longer than the final-write patience: the attempt is given up, rq cannot
    record it, and rq's loop waits rather than quits; the job resumes from its checkpoint."""
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            local(WORKER_COMMAND),
            cwd=ROOT,
            env={**os.environ, **FAST, "REDIS_URL": redis_url, "FINAL_WRITE_PATIENCE_SECONDS": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        job = long_job(epochs=1500)
        job_id = submit(live_server, job)
        wait_for(live_server, job_id, past_epoch(20), "epoch 20")
        wait_for_checkpoint(redis_conn, job_id, RECOVERY_DEADLINE)
        redis_conn.config_set("min-replicas-to-write", 1)
        try:
            wait_for_log(log, f"job {job_id}: Redis refuses writes for now", worker)
            wait_for_log(log, "gave up a final write", worker)
            wait_for_log(log, f"rq could not record the end of {job_id}", worker)
            wait_for_log(log, "will check in again", worker)
        finally:
            redis_conn.config_set("min-replicas-to-write", 0)
        record = wait_for(live_server, job_id, final, "an end")
        assert record["status"] == "finished", record
        assert record["attempts"] == 2
        assert_same_as_uninterrupted(live_server, job_id, job)
        assert worker.poll() is None
    finally:
        stop_all([worker], STOP_TIMEOUT)


def test_make_run_uses_the_sentinels_master_and_starts_no_redis(group, tmp_path):
    port, log = free_port(), tmp_path / "run.log"
    env = {
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        **sentinel_env(group),
        "WORKERS": "1",
        "WEBHOOK_WORKERS": "1",
        "WEB_CONCURRENCY": "1",
        "PORT": str(port),
        "REDIS_PORT": str(free_port()),  # where an embedded Redis would go; none must
        "VAR_DIR": str(tmp_path / "var"),
        "STOP_TIMEOUT": "20",
        "PYTHONPATH": str(ROOT),
    }
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        run = subprocess.Popen(
            [sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        wait_until(lambda: answers_ok(f"{base}/readyz"), 60, run, "make run ready")
        job_id = submit(base, GOOD_JOB)
        assert wait_for(base, job_id, final, "an end")["status"] == "finished"
        master = store.connect(sentinel=SentinelConfig.from_env(env))
        assert store.get_job(master, job_id)["status"] == "finished"
        store.close(master)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(60)
    output = log.read_text()
    assert "using the Redis master that REDIS_SENTINELS report" in output
    assert "started redis" not in output and not (tmp_path / "var").exists()
    assert run.returncode == 0, output[-3000:]


def connections_to(ports) -> int:
    """This process's established TCP connections to any of ``ports`` (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port, state, inode = int(fields[2].split(":")[1], 16), fields[3], fields[9]
        count += state == "01" and remote_port in ports and inode in inodes
    return count


def test_closing_a_sentinel_client_closes_the_sentinels_connections_too(group):
    """Closing only the master's client left the Sentinel's own sockets open, for the garbage
    collector to warn about (ResourceWarning) in whichever test it happened to run."""
    master = store.connect(sentinel=SentinelConfig.from_env(sentinel_env(group)))
    master.set("probe", "value")
    assert connections_to(group.sentinel_ports) > 0
    store.close(master)
    assert connections_to(group.sentinel_ports) == 0
    assert connections_to(group.data_ports) == 0
