"""What a worker spends on Redis per job, outside training: its round trips.

A real TrainingWorker (rq's SimpleWorker) runs small jobs from the real queue in this process,
in burst mode, against the test Redis. Round trips are counted where redis-py sends them, so a
pipeline counts once, as it costs once.
"""

import numpy as np
import pytest
from rq.serializers import JSONSerializer

import store
from store import queue
from workers.tasks import train_job
from workers.worker import TrainingWorker

JOB = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "seed": 0,
    },
    "training": {"loss": "binary_crossentropy", "epochs": 5},
}


@pytest.fixture
def worker_env(redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    # No throttled flushes or checkpoints while it trains: only the per-job work is counted.
    monkeypatch.setenv("FLUSH_SECONDS", "1000")
    monkeypatch.setenv("CHECKPOINT_SECONDS", "1000")


def submit(conn, n: int) -> list[str]:
    ids = []
    rng = np.random.default_rng(0)
    for _ in range(n):
        job_id = store.new_id()
        arrays = {"X": rng.standard_normal((8, 3)), "y": (rng.random((8, 1)) > 0.5) * 1.0}
        record = store.create_job(conn, job_id, JOB, arrays, epochs=5, max_runtime_seconds=60)
        queue.enqueue(conn, record)
        ids.append(job_id)
    return ids


def run_worker(conn) -> None:
    worker = TrainingWorker([queue.QUEUE_NAME], connection=conn, serializer=JSONSerializer)
    worker.work(burst=True, with_scheduler=False)


def test_a_worker_spends_at_most_25_round_trips_on_a_job(worker_env, redis_conn, round_trips):
    run_worker(redis_conn)  # rq's start-up and shut-down, without jobs
    empty = len(round_trips)
    del round_trips[:]
    ids = submit(redis_conn, 4)
    submitted = len(round_trips)
    run_worker(redis_conn)
    per_job = (len(round_trips) - submitted - empty) / len(ids)
    assert [store.get_job(redis_conn, i)["status"] for i in ids] == ["finished"] * len(ids)
    assert per_job <= 25, per_job


def test_a_job_that_fails_is_ended_without_reading_its_tenant_again(
    worker_env, redis_conn, round_trips
):
    job_id = store.new_id()
    arrays = {"X": np.zeros((2, 1)), "y": np.zeros((2, 1))}
    store.create_job(redis_conn, job_id, {}, arrays, epochs=1, max_runtime_seconds=60)
    redis_conn.ping()  # its connection is open before the count
    del round_trips[:]
    assert train_job(job_id)["status"] == "failed"
    # The worker has the job's record: ending it reads nothing of it again (its callbacks and
    # sweep are one HMGET, for the status change).
    assert "HGET" not in round_trips, " ".join(round_trips)
