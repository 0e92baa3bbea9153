"""What one reaper pass costs with many healthy jobs in Redis: round trips and milliseconds.

Shared by ``make bench-scale`` and ``tests/test_reaper_scale.py``. The jobs are made cheaply,
with pipelines, through the store's own functions: records marked started, each with a lease
that a (pretend) live worker holds for longer than the measurement.
"""

import time

import redis

import store
from store import JobStatus
from workers.reaper import reap
from workers.settings import Settings

OWNER = "bench-worker:1"
BATCH = 1000


def add_started_jobs(conn: redis.Redis, n: int, lease_ms: int = 600_000) -> list[str]:
    """``n`` started jobs whose leases a live worker holds; returns their ids."""
    ids = [store.new_id() for _ in range(n)]
    for start in range(0, n, BATCH):
        pipe = conn.pipeline(transaction=False)
        for job_id in ids[start : start + BATCH]:
            store.update_job(
                pipe, job_id, id=job_id, status=JobStatus.STARTED, rq_job_id=f"{job_id}-1"
            )
            store.acquire_lease(pipe, job_id, OWNER, lease_ms)
        pipe.execute()
    return ids


def command_count(conn: redis.Redis) -> int:
    """Commands Redis has run since its statistics were last reset (INFO commandstats)."""
    return sum(stat["calls"] for stat in conn.info("commandstats").values())


def measure(conn: redis.Redis, settings: Settings) -> tuple[int, float]:
    """One reaper pass: ``(Redis commands it ran, milliseconds it took)``.

    The count comes from the server (INFO commandstats, reset just before), so it counts a
    script's inner calls too; the INFO that reads it is not counted.
    """
    conn.config_resetstat()
    t0 = time.perf_counter()
    reap(conn, set(), set(), settings)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    commands = command_count(conn) - 1  # CONFIG RESETSTAT is counted after the reset
    return commands, elapsed_ms


class CountingConnection(redis.Connection):
    """A connection that counts its round trips (one per command, one per pipeline)."""

    sent = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def counting_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, connection_class=CountingConnection)
