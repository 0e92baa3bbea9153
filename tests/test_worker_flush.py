"""Workers report progress in pipelined flushes, not with a Redis round trip per epoch.

Redis counts every command it runs (INFO commandstats). The worker's flushes are paced by the
clock (FLUSH_SECONDS), and so are its heartbeats and reaper scans, so the counts are bounded
by how long the job took, never by its 10,000 epochs; its history still holds every epoch.
The job cannot take longer than JOB_DEADLINE, so every bound stays far below 10,000.
"""

import socket
import threading
import time

import pytest

import store
from backprop import Trainer
from service import create_app
from tests.support.jobs import article_job
from workers.progress import JobMonitor
from workers.settings import Settings

EPOCHS = 10_000
JOB_DEADLINE = 60  # seconds to wait for the job before giving up (not a timing assertion)
FLUSH_SECONDS = 0.5
# Commands per second the clock-paced work may add up to (flushes, heartbeats, the reaper,
# rq's own upkeep): generous, and still far below a round trip per epoch over JOB_DEADLINE.
COMMANDS_PER_SECOND = 100
XOR_JOB = article_job(EPOCHS)


def command_counts(conn) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT, by lowercase command name."""
    return {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in conn.info("commandstats").items()
    }


def wait_until_done(conn, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_DEADLINE
    while (record := store.get_job(conn, job_id))["status"] not in store.FINAL_STATUSES:
        assert time.monotonic() < deadline, record
        time.sleep(0.05)
    return record


def test_a_10000_epoch_job_makes_few_redis_writes(redis_url, redis_conn, start_worker):
    client = create_app({"REDIS_URL": redis_url, "TESTING": True}).test_client()
    start_worker(FLUSH_SECONDS=str(FLUSH_SECONDS))
    redis_conn.config_resetstat()

    began = time.monotonic()
    response = client.post("/v1/jobs", json=XOR_JOB)
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    record = wait_until_done(redis_conn, job_id)
    elapsed = time.monotonic() - began  # the job ran within this window
    counts = command_counts(redis_conn)

    assert record["status"] == "finished", record
    history = store.load_history(redis_conn, job_id)
    assert history["epoch"] == list(range(1, EPOCHS + 1))
    assert len(history["loss"]) == EPOCHS
    # Every flush writes once to each history column (SETRANGE), and nothing else does.
    flushes = counts.get("setrange", 0) / len(history)
    # One flush per FLUSH_SECONDS of the run, the final one, and one of slack.
    assert 1 <= flushes <= elapsed / FLUSH_SECONDS + 2, (flushes, elapsed, counts)
    assert flushes < EPOCHS // 10, (flushes, counts)
    # Everything else the worker and the submission did, but the test's own polling (HGETALL).
    others = sum(counts.values()) - counts.get("hgetall", 0)
    assert others <= COMMANDS_PER_SECOND * elapsed + EPOCHS // 10, (others, elapsed, counts)


@pytest.fixture
def refusing_port():
    """A port whose listener accepts each connection and closes it at once, like a Redis that
    went away; yields ``(port, accepted)``, ``accepted`` counting the connections tried."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # so the loop sees the test end at once
    accepted = []
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    done.set()
    thread.join(5)
    listener.close()


def test_an_unreachable_redis_is_retried_at_the_flush_pace_not_per_epoch(refusing_port):
    """While Redis is away, a failed flush or checkpoint is retried after its interval."""
    port, accepted = refusing_port
    job = article_job(200)
    spec = {k: job[k] for k in ("network", "training")}
    trainer = Trainer(spec, job["data"]["X"], job["data"]["y"])
    conn = store.connect(f"redis://127.0.0.1:{port}/0")
    settings = Settings(flush_seconds=3600, checkpoint_seconds=3600)
    monitor = JobMonitor(conn, "0" * 32, trainer, settings, None)
    monitor.last_flush = monitor.last_checkpoint = float("-inf")  # both due at the first epoch
    trainer.fit(monitor)
    assert trainer.epoch == 200
    # One flush and one checkpoint were tried (each with the client's own few retries), not one
    # per epoch.
    assert 2 <= len(accepted) <= 20, len(accepted)
    conn.close()
