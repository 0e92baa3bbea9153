"""A reaper pass reads only what is overdue: its cost does not grow with the healthy jobs.

Thousands of jobs are written straight into the real Redis with pipelines (the store's own
functions); the pass is the worker's own ``reap``, and Redis counts the commands it runs.
"""

import time

import numpy as np
import pytest

import store
from bench.reaper_pass import add_started_jobs, measure
from store import JobStatus, queue
from workers.reaper import reap
from workers.settings import Settings

# Short leases, so that a lease a pretend worker stops renewing runs out within the test.
SETTINGS = Settings(lease_seconds=0.05)


def make_job(conn) -> dict:
    """A real queued job (tiny arrays) on the rq training queue."""
    job_id = store.new_id()
    arrays = {"X": np.zeros((2, 1)), "y": np.zeros((2, 1))}
    record = store.create_job(conn, job_id, {}, arrays, epochs=1, max_runtime_seconds=60)
    record["rq_job_id"] = queue.enqueue(conn, record)
    return record


def dequeue(conn) -> str:
    """Take the next attempt off the queue as rq's worker does (into its intermediate queue)."""
    rq_queue = queue.training_queue(conn)
    return conn.lmove(rq_queue.key, rq_queue.intermediate_queue_key).decode()


def pass_until(conn, job_id: str, predicate, passes: int = 20) -> dict:
    """Reaper passes, a lease's length apart, until the job's record satisfies ``predicate``."""
    suspects, stop_sent = set(), set()
    for _ in range(passes):
        time.sleep(SETTINGS.lease_seconds * 2)
        reap(conn, suspects, stop_sent, SETTINGS)
        record = store.get_job(conn, job_id)
        if predicate(record):
            return record
    pytest.fail(f"job {job_id} never changed: {record}")


def test_a_pass_costs_the_same_commands_with_10000_healthy_jobs_as_with_10(redis_conn):
    add_started_jobs(redis_conn, 10)
    few, _ = measure(redis_conn, Settings())
    add_started_jobs(redis_conn, 9_990)
    assert redis_conn.zcard(store.LEASE_DEADLINES) == 10_000
    many, _ = measure(redis_conn, Settings())
    assert many == few
    assert few < 10


def test_a_pass_gives_any_number_of_dequeued_jobs_their_deadlines_at_once(redis_conn, round_trips):
    def one_pass() -> list[str]:
        del round_trips[:]
        reap(redis_conn, set(), set(), Settings())
        return list(round_trips)

    first = make_job(redis_conn)["id"]
    dequeue(redis_conn)
    one = one_pass()
    others = [make_job(redis_conn)["id"] for _ in range(4)]
    for _ in others:
        dequeue(redis_conn)
    five = one_pass()
    assert five == one, f"{one} then {five}"
    deadlines = redis_conn.zrange(store.LEASE_DEADLINES, 0, -1)
    assert sorted(d.decode() for d in deadlines) == sorted([first, *others])


def test_an_expired_lease_among_10000_healthy_ones_is_rescued(redis_conn):
    healthy = add_started_jobs(redis_conn, 10_000)
    record = make_job(redis_conn)
    job_id = record["id"]
    dequeue(redis_conn)
    # A worker takes the job, starts it, and dies: its lease is never renewed.
    assert store.acquire_lease(redis_conn, job_id, "dead-worker:1", SETTINGS.lease_ms)
    assert store.start_attempt(redis_conn, job_id) == 1

    rescued = pass_until(redis_conn, job_id, lambda r: r["status"] == JobStatus.QUEUED)
    assert rescued["rq_job_id"] == f"{job_id}-2"
    waiting = [i.decode() for i in redis_conn.lrange(queue.training_queue(redis_conn).key, 0, -1)]
    assert waiting == [f"{job_id}-2"]
    # The healthy jobs were left alone.
    assert store.get_job(redis_conn, healthy[0])["status"] == JobStatus.STARTED
    assert store.lease_holder(redis_conn, healthy[-1]) is not None


def test_a_job_dequeued_by_a_worker_that_died_before_its_lease_is_rescued(redis_conn):
    record = make_job(redis_conn)
    job_id = record["id"]
    assert dequeue(redis_conn) == f"{job_id}-1"  # then the worker dies: no deadline, no lease
    rescued = pass_until(redis_conn, job_id, lambda r: r["rq_job_id"] == f"{job_id}-2")
    assert rescued["status"] == JobStatus.QUEUED
    waiting = [i.decode() for i in redis_conn.lrange(queue.training_queue(redis_conn).key, 0, -1)]
    assert waiting == [f"{job_id}-2"]


def test_a_requeued_job_waiting_in_the_queue_is_dropped_from_the_watch_not_rescued(redis_conn):
    record = make_job(redis_conn)
    job_id = record["id"]
    # A deadline that has passed, as a rescued (requeued) job's last one has.
    store.expect_lease(redis_conn, job_id, 1)
    time.sleep(0.01)
    suspects: set = set()
    for _ in range(3):
        reap(redis_conn, suspects, set(), SETTINGS)
    assert redis_conn.zscore(store.LEASE_DEADLINES, job_id) is None
    after = store.get_job(redis_conn, job_id)
    assert after["status"] == JobStatus.QUEUED and after["rq_job_id"] == f"{job_id}-1"


def test_a_job_orphaned_before_lease_deadlines_existed_is_rescued_after_seeding(redis_conn):
    """A started job whose worker died under the old reaper: active, no lease, no deadline."""
    record = make_job(redis_conn)
    job_id = record["id"]
    rq_id = dequeue(redis_conn)
    # rq takes an attempt it starts out of its intermediate queue.
    redis_conn.lrem(queue.training_queue(redis_conn).intermediate_queue_key, 1, rq_id)
    assert store.start_attempt(redis_conn, job_id) == 1
    assert redis_conn.sismember(store.ACTIVE_JOBS, job_id)
    assert store.seed_lease_deadlines(redis_conn) == 1
    assert store.seed_lease_deadlines(redis_conn) == -1  # once per Redis
    rescued = pass_until(redis_conn, job_id, lambda r: r["status"] == JobStatus.QUEUED)
    assert rescued["rq_job_id"] == f"{job_id}-2"
