"""A full Redis: at maxmemory with the noeviction policy it refuses every write that needs memory.

The API answers 507 with the JSON error body and leaves nothing of a refused request behind;
workers stay alive, keep training with their progress in memory, and store each job, or fail
it with ``storage_full``, once Redis has room. A real redis-server with a small maxmemory, the
API under gunicorn and workers in subprocesses.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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
from tests.support.resume import FAST, assert_same_as_uninterrupted, wait_for_checkpoint

pytestmark = pytest.mark.process

MAXMEMORY = "20mb"
CHUNK = 64 * 1024  # one filler key
OVERSHOOT = 2 * 1024 * 1024  # how far past maxmemory a full Redis is here


@pytest.fixture(scope="module")
def small_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server that refuses writes past MAXMEMORY instead of evicting keys."""
    data_dir = tmp_path_factory.mktemp("small-redis")
    args = (
        "--save", "", "--appendonly", "no",
        "--maxmemory", MAXMEMORY, "--maxmemory-policy", "noeviction",
        "--logfile", str(data_dir / "redis.log"),
    )  # fmt: skip
    with embedded_redis.running(data_dir, args, STOP_TIMEOUT) as url:
        yield url


@pytest.fixture(scope="module")
def small_server(small_redis_server: str) -> Iterator[str]:
    """The API under gunicorn against the small Redis; its base URL."""
    with serve_api(small_redis_server) as base_url:
        yield base_url


@pytest.fixture
def conn(small_redis_server: str) -> Iterator[redis.Redis]:
    """A client of the small Redis, emptied for this test."""
    client = redis.Redis.from_url(small_redis_server)
    client.flushall()
    yield client
    client.close()


class Filler:
    """Fills Redis past maxmemory, so that it refuses even the smallest write; frees it again.

    CHUNK-sized keys up to the limit, then one key of OVERSHOOT bytes made by a short SETRANGE
    (Redis checks the limit before a command, not after): the client buffers that come and go
    cannot bring memory back under the limit.
    """

    def __init__(self, conn: redis.Redis):
        self.conn, self.keys = conn, []

    def fill(self) -> None:
        while True:
            key = f"filler:{len(self.keys)}"
            try:
                self.conn.set(key, b"x" * CHUNK)
            except redis.exceptions.OutOfMemoryError:
                break
            self.keys.append(key)
        for _ in range(2):  # room for the SETRANGE itself
            self.conn.delete(self.keys.pop())
        self.conn.setrange("filler:overshoot", OVERSHOOT, b"x")
        self.keys.append("filler:overshoot")

    def leave_room(self, chunks: int) -> None:
        """Free about ``chunks`` * CHUNK bytes: small writes fit again, large ones do not."""
        self.conn.delete(self.keys.pop())  # the overshoot
        for _ in range(chunks - 2):
            self.conn.delete(self.keys.pop())
        self.conn.set("room-check", b"y" * 1024)  # a small write goes through

    def free(self) -> None:
        while self.keys:
            self.conn.delete(self.keys.pop())


@pytest.fixture
def filler(conn: redis.Redis) -> Iterator[Filler]:
    fill = Filler(conn)
    yield fill
    fill.free()


@pytest.fixture
def start_small_worker(small_redis_server: str, tmp_path: Path):
    """Factory: ``start_small_worker(**env)`` runs ``python -m workers`` against the small Redis;
    returns the process and the file its log goes to."""
    started: list[subprocess.Popen] = []

    def start(**env: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                local(WORKER_COMMAND),
                cwd=ROOT,
                env={**os.environ, **FAST, "REDIS_URL": small_redis_server, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process, log

    yield start
    stop_all(started, STOP_TIMEOUT)


def wait_for_log(log: Path, text: str, process: subprocess.Popen) -> None:
    """Wait until the worker has logged ``text``; fail if it exits first."""
    deadline = time.monotonic() + DEADLINE
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"never logged {text!r}:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def assert_storage_full(response: requests.Response) -> None:
    assert response.status_code == 507, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == 507 and body["status"] == "Insufficient Storage"
    assert "full" in body["message"] and "Retry later" in body["message"]
    assert int(response.headers["Retry-After"]) > 0


def stored_jobs(conn: redis.Redis) -> list[str]:
    return [record["id"] for record in store.list_jobs(conn, 100)[0]]


def dataset_upload(base: str, rows: int = 4) -> requests.Response:
    body = {"X": [[i, i % 2] for i in range(rows)], "y": [[i % 2] for i in range(rows)]}
    return requests.post(f"{base}/v1/datasets", json=body, timeout=30)


# -- the API ---------------------------------------------------------------------------------


def test_writes_to_a_full_redis_are_507_and_leave_nothing(small_server, conn, filler):
    waiting = submit(small_server, long_job(epochs=5))  # no worker: it stays queued
    old_data = dataset_upload(small_server, rows=6).json()["id"]
    job = long_job(epochs=5)
    filler.fill()

    assert_storage_full(requests.post(f"{small_server}/v1/jobs", json=job, timeout=30))
    keyed = {"Idempotency-Key": "full-1"}
    assert_storage_full(
        requests.post(f"{small_server}/v1/jobs", json=job, headers=keyed, timeout=30)
    )
    assert_storage_full(dataset_upload(small_server))
    assert_storage_full(requests.delete(f"{small_server}/v1/jobs/{waiting}", timeout=30))
    # Reads still work, and nothing of the refused requests was stored.
    listed = requests.get(f"{small_server}/v1/jobs", timeout=30)
    assert listed.status_code == 200
    assert [j["id"] for j in listed.json()["jobs"]] == [waiting]
    assert status(small_server, waiting)["status"] == "queued"
    assert stored_jobs(conn) == [waiting]
    assert conn.smembers(store.tenant_active_key("public")) == {waiting.encode()}
    assert conn.exists(store.idempotency_key("public", "full-1")) == 0
    # Deleting data makes room, so it works even now.
    assert requests.delete(f"{small_server}/v1/datasets/{old_data}", timeout=30).status_code == 204
    assert store.get_dataset(conn, old_data) is None

    filler.free()
    first = requests.post(f"{small_server}/v1/jobs", json=job, headers=keyed, timeout=30)
    assert first.status_code == 202, first.text
    again = requests.post(f"{small_server}/v1/jobs", json=job, headers=keyed, timeout=30)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert dataset_upload(small_server).status_code == 201
    assert requests.delete(f"{small_server}/v1/jobs/{waiting}", timeout=30).status_code == 200


def test_a_submission_refused_part_way_leaves_nothing(small_server, conn, filler):
    """Redis takes the idempotency key and the quota slot, then refuses the job's arrays."""
    job = long_job(epochs=5)
    rng = np.random.default_rng(0)
    job["data"] = {
        "X": rng.standard_normal((20_000, 6)).tolist(),
        "y": np.eye(3)[rng.integers(0, 3, 20_000)].tolist(),
    }
    keyed = {"Idempotency-Key": "part-way"}
    filler.fill()
    filler.leave_room(4)  # 256 KiB for small writes; the arrays are 1.4 MiB

    assert_storage_full(
        requests.post(f"{small_server}/v1/jobs", json=job, headers=keyed, timeout=60)
    )
    assert stored_jobs(conn) == []
    assert conn.keys(f"{store.PREFIX}:job:*") == []
    assert conn.smembers(store.tenant_active_key("public")) == set()
    assert conn.exists(store.idempotency_key("public", "part-way")) == 0

    filler.free()
    retry = requests.post(f"{small_server}/v1/jobs", json=job, headers=keyed, timeout=60)
    assert retry.status_code == 202, retry.text
    assert stored_jobs(conn) == [retry.json()["id"]]


def test_discard_job_undoes_create_job(conn):
    store.reserve_job_slot(conn, "t", "j1", 5)
    arrays = {"X": np.zeros((2, 2)), "y": np.zeros((2, 1))}
    store.create_job(conn, "j1", {"spec": 1}, arrays, 3, 60.0, tenant="t")
    assert conn.dbsize() > 0
    store.discard_job(conn, "j1", "t")
    assert conn.dbsize() == 0


# -- the workers -----------------------------------------------------------------------------


def test_a_worker_keeps_training_through_a_full_redis(
    small_server, conn, filler, start_small_worker
):
    worker, log = start_small_worker()
    job = long_job(epochs=1500)
    job_id = submit(small_server, job)
    wait_for(small_server, job_id, past_epoch(20), "epoch 20")
    filler.fill()
    wait_for_log(log, f"job {job_id}: progress not stored: Redis is full", worker)
    # Training ends while Redis is still full: its last flush waits for room.
    wait_for_log(log, f"job {job_id}: Redis is full (maxmemory); retrying a final write", worker)
    assert worker.poll() is None
    assert status(small_server, job_id)["status"] == "started"

    filler.free()
    record = wait_for(small_server, job_id, final, "an end")
    assert record["status"] == "finished", record
    assert record["attempts"] == 1
    assert_same_as_uninterrupted(small_server, job_id, job)  # no history lost or doubled
    second = submit(small_server, long_job(epochs=5))
    assert wait_for(small_server, second, final, "an end")["status"] == "finished"
    assert worker.poll() is None


def test_a_model_a_full_redis_has_no_room_for_fails_the_job(
    small_server, conn, filler, start_small_worker
):
    worker, log = start_small_worker(FINAL_WRITE_PATIENCE_SECONDS="3")
    wide = long_job(epochs=3)
    wide["data"]["X"] = np.random.default_rng(1).standard_normal((8, 600)).tolist()
    wide["data"]["y"] = np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]].tolist()
    wide["network"]["layers"] = [
        {"units": 400, "activation": "tanh"},
        {"units": 3, "activation": "softmax"},
    ]  # 241,603 parameters: a model of about 1.9 MiB
    filler.fill()
    filler.leave_room(8)  # 512 KiB: the job and its progress fit, its model does not
    job_id = submit(small_server, wide)

    record = wait_for(small_server, job_id, final, "an end")
    assert record["status"] == "failed", record
    assert record["error"]["code"] == "storage_full"
    assert "full" in record["error"]["message"] and "bytes" in record["error"]["message"]
    assert record["model_id"] is None
    assert requests.get(f"{small_server}/v1/models/{job_id}", timeout=30).status_code == 404
    assert conn.smembers(store.tenant_active_key("public")) == set()
    assert worker.poll() is None

    filler.free()
    second = submit(small_server, long_job(epochs=5))
    assert wait_for(small_server, second, final, "an end")["status"] == "finished"
    assert worker.poll() is None


def test_a_worker_outlasts_a_redis_too_full_to_record_anything(
    small_server, conn, filler, start_small_worker
):
    """The last flush and then rq's own records are refused: the attempt is given up, the
    worker waits for room, and the job resumes from its checkpoint once there is some."""
    worker, log = start_small_worker(FINAL_WRITE_PATIENCE_SECONDS="1")
    job = long_job(epochs=1500)
    job_id = submit(small_server, job)
    wait_for(small_server, job_id, past_epoch(20), "epoch 20")
    wait_for_checkpoint(conn, job_id, DEADLINE)
    filler.fill()
    wait_for_log(log, f"job {job_id}: Redis is full (maxmemory); gave up a final write", worker)
    wait_for_log(log, f"Redis is full (maxmemory); rq could not record the end of {job_id}", worker)
    wait_for_log(log, "Redis is full (maxmemory); will check in again", worker)
    assert worker.poll() is None

    filler.free()
    record = wait_for(small_server, job_id, final, "an end")
    assert record["status"] == "finished", record
    assert record["attempts"] == 2
    assert_same_as_uninterrupted(small_server, job_id, job)
    second = submit(small_server, long_job(epochs=5))
    assert wait_for(small_server, second, final, "an end")["status"] == "finished"
    assert worker.poll() is None
