"""Resumed jobs against an uninterrupted run: worker settings that make faults quick to
recover from, and the byte-for-byte comparison."""

import json
import time

import redis
import requests

import store
from backprop import Trainer

# Fast heartbeats so that a dead worker's job is picked up within a second or two.
FAST = {
    "FLUSH_SECONDS": "0.05",
    "CHECKPOINT_SECONDS": "0.2",
    "LEASE_SECONDS": "1.5",
    "HEARTBEAT_SECONDS": "0.2",
    "REAP_SECONDS": "0.3",
    "CANCEL_GRACE_SECONDS": "1",
}


def reference(job: dict) -> tuple[list, dict]:
    """Weights and history of an uninterrupted in-process run, as the API would show them."""
    spec = {"network": job["network"], "training": job["training"]}
    trainer = Trainer(spec, job["data"]["X"], job["data"]["y"])
    trainer.fit()
    weights = json.loads(json.dumps(trainer.model().weights()))
    return weights, json.loads(json.dumps(trainer.history))


def assert_same_as_uninterrupted(base: str, job_id: str, job: dict) -> None:
    """The job's weights and history at ``base`` are those of ``reference(job)``, exactly."""
    weights, history = reference(job)
    got_weights = requests.get(f"{base}/v1/models/{job_id}/weights", timeout=10).json()
    got_history = requests.get(f"{base}/v1/jobs/{job_id}/history", timeout=10).json()
    assert got_weights == weights
    assert got_history == history


def wait_for_checkpoint(conn: redis.Redis, job_id: str, timeout: float) -> None:
    """Until the job has a checkpoint to resume from (``timeout``: a bound on a broken run)."""
    deadline = time.monotonic() + timeout
    while not conn.exists(store.checkpoint_key(job_id)):
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.05)
