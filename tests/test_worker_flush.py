"""Workers report progress in pipelined flushes, not with a Redis round trip per epoch.

Redis counts every command it runs (INFO commandstats); a 10,000-epoch job must leave those
counts far below 10,000 while its history still holds every epoch.
"""

import time

import store
from service import create_app

EPOCHS = 10_000
JOB_DEADLINE = 60  # seconds to wait for the job before giving up (not a timing assertion)
XOR_JOB = {
    "network": {
        "layers": [{"units": 2, "activation": "sigmoid"}, {"units": 1, "activation": "sigmoid"}],
        "init": {"scheme": "uniform", "low": 0, "high": 1},
        "seed": 1,
    },
    "training": {
        "loss": "sse",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": EPOCHS,
        "batch_size": None,
    },
    "data": {"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [[0], [1], [1], [0]]},
}
# Writes a per-epoch reporter would issue once an epoch (or more).
WRITE_COMMANDS = ("append", "hset", "exec", "set", "rpush", "setrange", "multi")
FEW = 200


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
    start_worker()
    redis_conn.config_resetstat()

    response = client.post("/v1/jobs", json=XOR_JOB)
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    record = wait_until_done(redis_conn, job_id)
    counts = command_counts(redis_conn)

    assert record["status"] == "finished", record
    history = store.load_history(redis_conn, job_id)
    assert history["epoch"] == list(range(1, EPOCHS + 1))
    assert len(history["loss"]) == EPOCHS
    writes = {name: counts.get(name, 0) for name in WRITE_COMMANDS}
    assert all(n < FEW for n in writes.values()), writes
    assert sum(counts.values()) - counts.get("hgetall", 0) < EPOCHS // 10, counts
