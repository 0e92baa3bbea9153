"""How long a worker takes to checkpoint and requeue its job after SIGTERM: the figure behind
the worker's ``terminationGracePeriodSeconds`` in deploy/k8s.

``python -m bench.shutdown``: starts an embedded Redis and the API, submits each job of
``JOBS``, then ``ROUNDS`` times starts a real ``python -m workers``, waits until it has trained
the job (resumed from the last round's checkpoint) for a few epochs, sends it SIGTERM and times
how long it takes to exit. Each round checks that the job is queued again, in rq's list, with
a checkpoint at a later epoch than the round before. Prints one line per round and per job the
longest exit and the epoch time (the stop waits for the epoch under way to end).
"""

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import redis
import requests

from bench.serve import running_stack
from devtools.processes import stop_all, wait_until
from store.keys import checkpoint_key
from store.queue import QUEUE_NAME

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def _job(inputs: int, hidden: list[int], rows: int, optimizer: str, epochs: int) -> dict:
    rng = np.random.default_rng(0)
    X = np.round(rng.random((rows, inputs)), 3)
    y = (X.sum(axis=1, keepdims=True) > inputs / 2).astype(float)
    layers = [{"units": units, "activation": "relu"} for units in hidden]
    return {
        "network": {"layers": [*layers, {"units": 1, "activation": "sigmoid"}], "seed": 0},
        "training": {
            "loss": "binary_crossentropy",
            "optimizer": {"name": optimizer, "learning_rate": 0.001},
            "epochs": epochs,
            "batch_size": 256,
        },
        "data": {"X": X.tolist(), "y": y.tolist()},
    }


# A tiny network (epochs of well under a millisecond), one with epochs of about a tenth of a
# second, and one of 2.2M parameters under Adam (a 53 MB checkpoint: the write dominates).
JOBS = {
    "tiny 2-4-1": _job(2, [4], 4, "sgd", 1_000_000),
    "mid 32-256-256-1, 20k rows": _job(32, [256, 256], 20_000, "adam", 100_000),
    "big 1000-1500-500-1 adam": _job(1000, [1500, 500], 256, "adam", 100_000),
    # At the parameter cap (MAX_PARAMETERS, 10M): the largest checkpoint a job can have.
    "cap 1000-3000-2300-1 adam": _job(1000, [3000, 2300], 256, "adam", 10_000),
}
ONLY = os.environ.get("BENCH_JOB", "")  # run the jobs whose name contains this only


def _worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workers"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(base: str, conn: redis.Redis, env: dict, name: str, job: dict) -> None:
    """Submit ``job``, then SIGTERM a worker training it ``ROUNDS`` times; print the figures."""
    job_id = requests.post(f"{base}/v1/jobs", json=job, timeout=60).json()["id"]
    exits, last_epoch, epoch_seconds = [], 0, 0.0
    for round_ in range(1, ROUNDS + 1):
        worker = _worker(env)
        try:
            # A few epochs past where it resumed, so the job is in the middle of training.
            target = last_epoch + 3
            wait_until(
                lambda target=target: _epoch(base, job_id) >= target,
                120,
                worker,
                f"{name}: round {round_}",
            )
            started, epoch_start = time.monotonic(), _epoch(base, job_id)
            time.sleep(1.0)  # the epoch time, from the progress it reports meanwhile
            epoch_seconds = max(
                epoch_seconds,
                (time.monotonic() - started) / max(1, _epoch(base, job_id) - epoch_start),
            )
            sent = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(300)
            exits.append(time.monotonic() - sent)
        finally:
            stop_all([worker], 5)
        record = requests.get(f"{base}/v1/jobs/{job_id}", timeout=10).json()
        queued = conn.lrange(f"rq:queue:{QUEUE_NAME}", 0, -1)
        epoch = int(record["progress"]["epoch"])
        assert code == 0, f"worker exited with {code}"
        assert record["status"] == "queued", record["status"]
        assert any(entry.decode().startswith(job_id) for entry in queued), queued
        assert epoch > last_epoch, (epoch, last_epoch)
        last_epoch = epoch
        print(f"{name}: round {round_}: SIGTERM to exit {exits[-1]:.2f} s, requeued at {epoch}")
    checkpoint = len(conn.get(checkpoint_key(job_id)) or b"")
    print(
        f"shutdown: job={name!r} epoch_s={epoch_seconds:.3f} checkpoint_bytes={checkpoint} "
        f"exit_s_median={statistics.median(exits):.2f} exit_s_max={max(exits):.2f}"
    )
    requests.delete(f"{base}/v1/jobs/{job_id}", timeout=10)


def _epoch(base: str, job_id: str) -> int:
    record = requests.get(f"{base}/v1/jobs/{job_id}", timeout=10).json()
    return int((record.get("progress") or {}).get("epoch", 0))


def main() -> None:
    # Durable like the deployed Redis: a checkpoint is an AOF write too. Workers are started by
    # each round, not by the stack.
    durable = ("--appendonly", "yes", "--save", "")
    with running_stack(
        "service.wsgi:app", workers=0, redis_args=durable, MAX_JSON_BODY_BYTES=str(64 * 2**20)
    ) as stack:
        base, env = stack.base, stack.env
        conn = redis.Redis.from_url(env["REDIS_URL"])
        for name, job in JOBS.items():
            if ONLY in name:
                measure(base, conn, env, name, job)


if __name__ == "__main__":
    main()
