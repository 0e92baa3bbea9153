"""Jobs survive faults: real workers killed with real signals, a real Redis stopped and started.

Every resumed job is compared byte for byte with an uninterrupted run of the same spec, made
here with the engine itself.
"""

import hashlib
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import redis
import requests

import store
from devtools import embedded_redis
from devtools.probes import free_port
from devtools.processes import stop_all, wait_until
from store import queue
from tests.support.apps import serve_api
from tests.support.jobs import DIVERGING_JOB, long_job
from tests.support.live import DEADLINE, final, past_epoch, status, submit, wait_for
from tests.support.resume import FAST, assert_same_as_uninterrupted

pytestmark = pytest.mark.process


def test_kill_9_at_several_points_resumes_bit_identical(live_server, start_worker):
    job = long_job()
    job_id = submit(live_server, job)
    kills = 0
    for k in (100, 500, 900):
        worker = start_worker(**FAST)
        wait_for(live_server, job_id, past_epoch(k, kills + 1), f"epoch {k}")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        kills += 1
    start_worker(**FAST)
    record = wait_for(live_server, job_id, final, "an end")
    assert record["status"] == "finished", record
    assert record["attempts"] == kills + 1
    assert_same_as_uninterrupted(live_server, job_id, job)


def test_sigterm_checkpoints_requeues_and_another_worker_finishes(live_server, start_worker):
    job = long_job(epochs=800)
    job_id = submit(live_server, job)
    first = start_worker(**FAST)
    wait_for(live_server, job_id, past_epoch(200), "epoch 200")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    requeued = status(live_server, job_id)
    assert requeued["status"] == "queued"
    assert 200 <= requeued["progress"]["epoch"] < 800
    start_worker(**FAST)
    record = wait_for(live_server, job_id, final, "an end")
    assert record["status"] == "finished"
    assert record["attempts"] == 2
    assert_same_as_uninterrupted(live_server, job_id, job)


def test_cancel_in_each_state(live_server, start_worker, redis_conn):
    base = live_server
    assert requests.delete(f"{base}/v1/jobs/nope", timeout=10).status_code == 404

    queued = submit(base, long_job(epochs=50))
    response = requests.delete(f"{base}/v1/jobs/{queued}", timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    # Tidied like any ended job: its data expires, it no longer counts as active.
    assert redis_conn.ttl(store.array_key(queued, "X")) > 0
    assert not redis_conn.sismember(store.ACTIVE_JOBS, queued)
    again = requests.delete(f"{base}/v1/jobs/{queued}", timeout=10)
    assert again.status_code == 200 and again.json()["status"] == "canceled"

    running = submit(base, long_job(epochs=100_000))
    start_worker(**FAST)
    wait_for(base, running, past_epoch(20), "epoch 20")
    response = requests.delete(f"{base}/v1/jobs/{running}", timeout=10)
    assert response.status_code == 202
    record = wait_for(base, running, final, "an end")
    assert record["status"] == "canceled"
    history = requests.get(f"{base}/v1/jobs/{running}/history", timeout=10).json()
    assert len(history["loss"]) >= 20
    assert history["epoch"] == list(range(1, len(history["epoch"]) + 1))

    # The canceled queued job was never trained, even though a worker now runs.
    done = submit(base, long_job(epochs=5))
    wait_for(base, done, final, "an end")
    assert status(base, queued)["attempts"] == 0
    for job_id in (done,):
        response = requests.delete(f"{base}/v1/jobs/{job_id}", timeout=10)
        assert response.status_code == 409
        assert response.json()["code"] == 409

    bad = long_job(epochs=50, optimizer={"name": "sgd", "learning_rate": 10.0})
    bad["training"]["loss"] = "sse"
    bad["network"]["layers"][-1]["activation"] = "linear"
    bad["data"]["y"] = (np.array(bad["data"]["y"]) * 1e6).tolist()
    failed = submit(base, bad)
    record = wait_for(base, failed, final, "an end")
    assert record["status"] == "failed"
    assert requests.delete(f"{base}/v1/jobs/{failed}", timeout=10).status_code == 409


def test_cancel_backstop_uses_rq_stop_job(live_server, start_worker):
    """A job that never reads its cancel flag (flushes disabled) is stopped by rq's command."""
    job_id = submit(live_server, long_job(epochs=100_000))
    start_worker(**{**FAST, "FLUSH_SECONDS": "100000"})
    wait_for(live_server, job_id, lambda r: r["status"] == "started", "started")
    time.sleep(0.5)
    assert requests.delete(f"{live_server}/v1/jobs/{job_id}", timeout=10).status_code == 202
    record = wait_for(live_server, job_id, final, "an end")
    assert record["status"] == "canceled"
    history = requests.get(f"{live_server}/v1/jobs/{job_id}/history", timeout=10).json()
    assert len(history["loss"]) > 0


def test_diverging_job_fails_with_code_diverged(live_server, start_worker):
    job = DIVERGING_JOB
    job_id = submit(live_server, job)
    start_worker(**FAST)
    record = wait_for(live_server, job_id, final, "an end")
    assert record["status"] == "failed"
    assert record["error"]["code"] == "diverged"
    assert "epoch" in record["error"]["message"]
    model = requests.get(f"{live_server}/v1/models/{job_id}", timeout=10)
    assert model.status_code == 404
    assert record["model_id"] is None


def test_runtime_cap_fails_with_timeout_and_keeps_history(live_server, start_worker):
    job = long_job(epochs=1_000_000)
    job["training"]["max_runtime_seconds"] = 1
    job_id = submit(live_server, job)
    start_worker(**FAST)
    record = wait_for(live_server, job_id, final, "an end")
    assert record["status"] == "failed"
    assert record["error"]["code"] == "timeout"
    history = requests.get(f"{live_server}/v1/jobs/{job_id}/history", timeout=10).json()
    assert len(history["loss"]) == record["progress"]["epoch"] > 0


def test_idempotency_key(live_server):
    job = long_job(epochs=5)
    first = requests.post(
        f"{live_server}/v1/jobs", json=job, headers={"Idempotency-Key": "k1"}, timeout=10
    )
    again = requests.post(
        f"{live_server}/v1/jobs", json=job, headers={"Idempotency-Key": "k1"}, timeout=10
    )
    assert first.status_code == 202 and again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    listed = requests.get(f"{live_server}/v1/jobs", timeout=10).json()["jobs"]
    assert [j["id"] for j in listed] == [first.json()["id"]]
    job["training"]["epochs"] = 6
    other = requests.post(
        f"{live_server}/v1/jobs", json=job, headers={"Idempotency-Key": "k1"}, timeout=10
    )
    assert other.status_code == 409
    assert other.json()["code"] == 409


def test_delete_model(live_server, start_worker):
    job_id = submit(live_server, long_job(epochs=3))
    start_worker(**FAST)
    wait_for(live_server, job_id, final, "an end")
    assert requests.get(f"{live_server}/v1/models/{job_id}", timeout=10).status_code == 200
    assert requests.delete(f"{live_server}/v1/models/{job_id}", timeout=10).status_code == 204
    gone = requests.get(f"{live_server}/v1/models/{job_id}", timeout=10)
    assert gone.status_code == 404 and "deleted" in gone.json()["message"]
    assert requests.delete(f"{live_server}/v1/models/{job_id}", timeout=10).status_code == 404
    assert status(live_server, job_id)["model_id"] is None


@pytest.fixture
def durable_redis(tmp_path):
    """An embedded Redis with its append-only file, which the test may stop and restart."""
    port = free_port()
    command = embedded_redis.command(
        port, tmp_path, ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
    )
    servers = []

    def start() -> subprocess.Popen:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        embedded_redis.wait_until_ready(process, port)
        servers.append(process)
        return process

    start()
    yield embedded_redis.url(port), start, servers
    stop_all(servers, 10)


def test_redis_restart_loses_nothing(durable_redis):
    url, start_redis, servers = durable_redis
    env = {**os.environ, **FAST, "REDIS_URL": url}
    from scripts.run import WORKER_COMMAND, local

    worker = subprocess.Popen(local(WORKER_COMMAND), env=env)
    try:
        with serve_api(url) as base:
            done = submit(base, long_job(epochs=5))
            wait_for(base, done, final, "an end")
            running_job = long_job(epochs=1500)
            running = submit(base, running_job)
            queued = submit(base, long_job(epochs=5))
            wait_for(base, running, past_epoch(100), "epoch 100")

            servers[-1].send_signal(signal.SIGTERM)  # Redis writes its AOF and exits
            servers[-1].wait(10)
            down = requests.get(f"{base}/v1/jobs/{running}", timeout=30)
            assert down.status_code == 503
            assert down.json()["code"] == 503 and "Redis" in down.json()["message"]
            assert requests.get(f"{base}/readyz", timeout=30).status_code == 503
            time.sleep(1)
            start_redis()

            for job_id in (running, queued):
                record = wait_for(base, job_id, final, "an end")
                assert record["status"] == "finished", record
            assert_same_as_uninterrupted(base, running, running_job)
            predict = requests.post(
                f"{base}/v1/models/{done}/predict", json={"inputs": [[0.0] * 6]}, timeout=10
            )
            assert predict.status_code == 200
            listed = requests.get(f"{base}/v1/jobs", timeout=10).json()["jobs"]
            assert {j["id"] for j in listed} == {done, running, queued}
    finally:
        stop_all([worker], 10)
    assert redis.Redis.from_url(url).ping()


def test_a_job_orphaned_while_redis_is_down_is_rescued_once_it_is_back(durable_redis):
    # The other worker's heartbeat thread (workers/reaper.py) meets Redis errors all through
    # the outage; it must still be there after it to find the orphan and requeue it.
    url, start_redis, servers = durable_redis
    env = {**os.environ, **FAST, "REDIS_URL": url}
    from scripts.run import WORKER_COMMAND, local

    doomed = subprocess.Popen(local(WORKER_COMMAND), env=env)
    workers = [doomed]
    conn = redis.Redis.from_url(url)
    try:
        with serve_api(url) as base:
            job_id = submit(base, long_job(epochs=1500))
            wait_for(base, job_id, past_epoch(50), "epoch 50")  # taken by the only worker
            workers.append(subprocess.Popen(local(WORKER_COMMAND), env=env))
            wait_until(lambda: store.live_workers(conn) == 2, DEADLINE, workers[1], "2 workers")

            servers[-1].send_signal(signal.SIGTERM)  # Redis writes its AOF and exits
            servers[-1].wait(10)
            doomed.send_signal(signal.SIGKILL)  # dies with the job's lease while Redis is down
            doomed.wait(10)
            time.sleep(6)  # longer than redis-py's own retries: the thread sees the errors
            start_redis()

            record = wait_for(base, job_id, final, "an end")
            assert record["status"] == "finished", record
            assert record["attempts"] == 2
            assert workers[1].poll() is None
    finally:
        conn.close()
        stop_all(workers, 10)


def test_a_job_whose_workers_keep_dying_fails_as_crashed(live_server, start_worker):
    job_id = submit(live_server, long_job(epochs=100_000))
    settings = {**FAST, "MAX_CRASHES": "2"}
    for attempt in (1, 2):
        worker = start_worker(**settings)
        wait_for(live_server, job_id, past_epoch(20, attempt), f"attempt {attempt}")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    start_worker(**settings)
    record = wait_for(live_server, job_id, final, "an end")
    assert record["status"] == "failed"
    assert record["error"]["code"] == "crashed"
    assert "2 times" in record["error"]["message"]


def test_an_idempotent_retry_during_the_first_request_is_409(live_server, redis_conn):
    job = long_job(epochs=5)
    body = json.dumps(job)
    # The first request has bound the key (to this body) but not stored its job yet.
    canonical = json.dumps(job, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    store.remember_idempotent(redis_conn, "public", "k2", digest, store.new_id())
    response = requests.post(
        f"{live_server}/v1/jobs",
        data=body,
        headers={"Content-Type": "application/json", "Idempotency-Key": "k2"},
        timeout=10,
    )
    assert response.status_code == 409
    assert response.headers["Retry-After"] == "1"
    assert "still being handled" in response.json()["message"]
    assert store.list_jobs(redis_conn, 10)[0] == []


# -- a backlog: more jobs than workers --------------------------------------------------------


def rq_queue_ids(conn) -> list[str]:
    """The rq job ids waiting in the training queue, in order."""
    return [i.decode() for i in conn.lrange(queue.training_queue(conn).key, 0, -1)]


def crashes(conn, job_id: str) -> int:
    return int(json.loads(conn.hget(store.job_key(job_id), "crashes") or b"0"))


def test_a_job_waiting_behind_a_busy_worker_is_not_rescued(live_server, start_worker, redis_conn):
    """The short job waits through many reaper passes; it must stay queued, once, untouched."""
    busy = submit(live_server, long_job(epochs=1_000_000))
    start_worker(**FAST)
    wait_for(live_server, busy, past_epoch(5), "the long job started")
    short = submit(live_server, long_job(epochs=10))
    # LEASE_SECONDS is 1.5 and REAP_SECONDS 0.3 here: 8 s is over twenty reaper passes, and
    # five times the lease, which is when the reaper used to give up on a queued job.
    time.sleep(8)
    waiting = status(live_server, short)
    assert waiting["status"] == "queued", waiting
    assert waiting["attempts"] == 0 and waiting["error"] is None
    assert crashes(redis_conn, short) == 0
    assert rq_queue_ids(redis_conn) == [f"{short}-1"]

    assert requests.delete(f"{live_server}/v1/jobs/{busy}", timeout=10).status_code == 202
    record = wait_for(live_server, short, final, "an end")
    assert record["status"] == "finished", record
    assert record["attempts"] == 1
    assert rq_queue_ids(redis_conn) == []


def test_a_backlog_survives_kills_of_busy_workers(live_server, start_worker, redis_conn):
    """Three workers, nine jobs; two workers die mid-job while the rest of the backlog waits."""
    jobs = [long_job(epochs=1200 + 50 * i) for i in range(9)]
    ids = [submit(live_server, job) for job in jobs]
    workers = [start_worker(**FAST) for _ in range(3)]
    wait_for(live_server, ids[0], past_epoch(100), "the first job past epoch 100")
    killed = []
    for worker in workers[:2]:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        killed.append(worker)
    # The queue keeps each waiting job once, whatever the reaper does meanwhile.
    for _ in range(10):
        waiting = rq_queue_ids(redis_conn)
        assert len(waiting) == len(set(job_id.rsplit("-", 1)[0] for job_id in waiting))
        time.sleep(0.3)
    start_worker(**FAST)
    records = [wait_for(live_server, job_id, final, "an end") for job_id in ids]
    assert [r["status"] for r in records] == ["finished"] * len(ids), records
    # Only the jobs the two killed workers held ran twice; nothing waiting was ever retried.
    retried = [r["attempts"] - 1 for r in records]
    assert min(retried) >= 0 and sum(retried) <= len(killed), records
    assert all(crashes(redis_conn, job_id) <= 1 for job_id in ids)
    assert rq_queue_ids(redis_conn) == []
    for job_id, job in zip(ids[:3], jobs[:3], strict=True):
        assert_same_as_uninterrupted(live_server, job_id, job)


def test_readyz_counts_only_workers_that_still_beat(live_server, start_worker):
    def ready_workers() -> int:
        return requests.get(f"{live_server}/readyz", timeout=10).json().get("workers", 0)

    def until(predicate, what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not predicate():
            assert time.monotonic() < deadline, f"/readyz never showed {what}"
            time.sleep(0.1)

    doomed, other = start_worker(**FAST), start_worker(**FAST)
    until(lambda: ready_workers() == 2, "two workers")
    doomed.send_signal(signal.SIGKILL)  # rq keeps its worker record for minutes
    doomed.wait(10)
    until(lambda: ready_workers() == 1, "one worker after a kill -9")
    other.send_signal(signal.SIGTERM)
    assert other.wait(30) == 0
    until(lambda: requests.get(f"{live_server}/readyz", timeout=10).status_code == 503, "503")
