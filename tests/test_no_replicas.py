"""A master with too few replicas (``min-replicas-to-write``) refuses writes with NOREPLICAS.

The Sentinel values (deploy/k8s/overlays/sentinel/redis-values.yaml) set
``min-replicas-to-write 1``, so a master whose replicas are all gone or lagging refuses every
write until one is back. That is "not now", as when Redis is unreachable: the API answers 503
with Retry-After and keeps nothing of the request; a worker keeps training and writes its
progress once a replica is back. A real redis-server with no replica stands in for it: with
``min-replicas-to-write 1`` it refuses every write, as such a master does.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

import store
from devtools import embedded_redis
from devtools.processes import stop_all
from scripts.run import WORKER_COMMAND, local
from tests.support.apps import ROOT, STOP_TIMEOUT, serve_api
from tests.support.jobs import long_job
from tests.support.live import DEADLINE, final, past_epoch, status, submit, wait_for
from tests.support.resume import FAST, assert_same_as_uninterrupted

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def lonely_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server without replicas; the tests make it want one."""
    data_dir = tmp_path_factory.mktemp("lonely-redis")
    with embedded_redis.running(data_dir, ("--save", "", "--appendonly", "no")) as url:
        yield url


@pytest.fixture(scope="module")
def server(lonely_redis: str) -> Iterator[str]:
    with serve_api(lonely_redis) as base_url:
        yield base_url


@pytest.fixture
def conn(lonely_redis: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(lonely_redis)
    client.flushall()
    yield client
    client.config_set("min-replicas-to-write", 0)
    client.close()


def want_replicas(conn: redis.Redis, count: int) -> None:
    conn.config_set("min-replicas-to-write", count)


def test_a_refused_write_raises_the_error_for_redis_being_unavailable(lonely_redis, conn):
    client = store.connect(lonely_redis)
    want_replicas(conn, 1)
    with pytest.raises(redis.exceptions.ConnectionError, match="replicas"):
        client.set("k", 1)
    # A write inside a script too (Redis 6 wraps it in a script error, Redis 7 does not).
    script = "return redis.call('set', KEYS[1], ARGV[1])"
    with pytest.raises(redis.exceptions.ConnectionError, match="replicas"):
        store.eval_script(client, script, ["k"], 1)
    assert client.get("k") is None  # reads still work
    want_replicas(conn, 0)
    assert client.set("k", 1)


def test_writes_without_replicas_are_503_and_leave_nothing(server, conn):
    job = long_job(epochs=5)
    keyed = {"Idempotency-Key": "no-replicas"}
    want_replicas(conn, 1)

    refused = requests.post(f"{server}/v1/jobs", json=job, headers=keyed, timeout=60)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json()["code"] == 503 and int(refused.headers["Retry-After"]) > 0
    listed = requests.get(f"{server}/v1/jobs", timeout=60)
    assert listed.status_code == 200 and listed.json()["jobs"] == []
    assert conn.keys(f"{store.PREFIX}:*") == []

    want_replicas(conn, 0)
    accepted = requests.post(f"{server}/v1/jobs", json=job, headers=keyed, timeout=60)
    assert accepted.status_code == 202, accepted.text
    assert requests.delete(f"{server}/v1/jobs/{accepted.json()['id']}", timeout=30).ok


@pytest.fixture
def start_worker_logged(lonely_redis: str, tmp_path: Path):
    """Factory: a ``python -m workers`` against the lonely Redis; its process and log file."""
    started: list[subprocess.Popen] = []

    def start() -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                local(WORKER_COMMAND),
                cwd=ROOT,
                env={**os.environ, **FAST, "REDIS_URL": lonely_redis},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process, log

    yield start
    stop_all(started, STOP_TIMEOUT)


def wait_for_log(log: Path, text: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + DEADLINE
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"never logged {text!r}:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_a_worker_trains_on_while_the_master_has_no_replica(server, conn, start_worker_logged):
    worker, log = start_worker_logged()
    job = long_job(epochs=1500)
    job_id = submit(server, job)
    wait_for(server, job_id, past_epoch(20), "epoch 20")
    want_replicas(conn, 1)
    wait_for_log(log, f"job {job_id}: progress not stored", worker)
    assert status(server, job_id)["status"] == "started"

    want_replicas(conn, 0)
    record = wait_for(server, job_id, final, "an end")
    assert record["status"] == "finished", record
    assert record["attempts"] == 1
    assert_same_as_uninterrupted(server, job_id, job)
    assert worker.poll() is None
