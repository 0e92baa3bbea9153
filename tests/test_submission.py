"""service.submission without HTTP: plain arguments, typed refusals, a real Redis."""

import pytest

import store
from service.auth import Tenant
from service.config import from_env
from service.exceptions import (
    IdempotencyKeyReused,
    IdempotentRequestInFlight,
    InvalidJob,
    TooManyActiveJobs,
)
from service.schemas import JobCreateSchema
from service.submission import dry_run, plan, submit
from tests.support.jobs import GOOD_JOB, edited

ALICE = Tenant("alice")
CONFIG = from_env({})


def loaded(job: dict = GOOD_JOB) -> dict:
    return JobCreateSchema().load(job)


def test_a_job_is_stored_and_its_id_queued(redis_conn):
    record = submit(redis_conn, plan(redis_conn, loaded(), ALICE, CONFIG), "alice", 5)
    assert store.get_job(redis_conn, record["id"])["status"] == "queued"
    waiting = redis_conn.lrange(store.queue.training_queue(redis_conn).key, 0, -1)
    assert [rq_id.decode() for rq_id in waiting] == [f"{record['id']}-1"]


def test_limits_are_invalid_jobs_naming_the_field(redis_conn):
    big = {**CONFIG, "MAX_PARAMETERS": 5}
    with pytest.raises(InvalidJob) as over:
        plan(redis_conn, loaded(), ALICE, big)
    assert list(over.value.errors) == ["network.layers"]
    with pytest.raises(InvalidJob) as long:
        plan(redis_conn, loaded(edited(("training.max_runtime_seconds", 10**9))), ALICE, CONFIG)
    assert list(long.value.errors) == ["training.max_runtime_seconds"]
    with pytest.raises(InvalidJob) as missing:
        job = edited(("data", None))
        del job["data"]
        plan(redis_conn, loaded({**job, "dataset_id": "0" * 32}), ALICE, CONFIG)
    assert list(missing.value.errors) == ["dataset_id"]


def test_a_dry_run_stores_nothing(redis_conn):
    answer = dry_run(plan(redis_conn, loaded(), ALICE, CONFIG), CONFIG)
    assert answer["valid"] and answer["estimate"]["parameters"] == 9
    assert store.list_jobs(redis_conn, 10)[0] == []


def test_the_active_job_cap_and_idempotent_retries(redis_conn):
    job = plan(redis_conn, loaded(), ALICE, CONFIG)
    first = submit(redis_conn, job, "alice", 1, ("k", "hash-1"))
    assert submit(redis_conn, job, "alice", 1, ("k", "hash-1"))["id"] == first["id"]
    with pytest.raises(IdempotencyKeyReused):
        submit(redis_conn, job, "alice", 1, ("k", "hash-2"))
    with pytest.raises(TooManyActiveJobs):
        submit(redis_conn, job, "alice", 1, ("other", "hash-1"))
    store.remember_idempotent(redis_conn, "alice", "busy", "hash-1", store.new_id())
    with pytest.raises(IdempotentRequestInFlight):
        submit(redis_conn, job, "alice", 1, ("busy", "hash-1"))
