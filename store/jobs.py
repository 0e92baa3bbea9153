"""Job records: a hash of JSON fields per job, its spec as JSON and its arrays as npy; the
indexes that list them; the start of an attempt and the end of a job.

Every change of a job's status adds a ``status`` entry to its event stream (``store.events``)
in the same transaction or script.
"""

import enum
import json
import time
from typing import TypedDict

import redis

from . import events, labels, paging, search
from .codecs import (
    array_from_bytes,
    array_to_bytes,
    iso_from_timestamp,
    json_or_none,
    now_iso,
    record_from_hash,
)
from .config import SharedConfig
from .connection import eval_script
from .keys import (
    ACTIVE_JOBS,
    JOBS_INDEX,
    PUBLIC_TENANT,
    array_key,
    cancel_key,
    checkpoint_key,
    events_key,
    job_key,
    reservation_key,
    spec_key,
    tenant_active_key,
    tenant_jobs_key,
)
from .models import load_model_meta

DATA_TTL_SECONDS = SharedConfig.data_ttl_seconds  # the default; see store.config
ARRAY_NAMES = ("X", "y", "X_val", "y_val")


class JobStatus(enum.StrEnum):
    """Job statuses, in rq's words."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_STATUSES = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED})


class Progress(TypedDict):
    """Where training stands, as the worker last flushed it."""

    epoch: int
    epochs: int
    loss: float | None
    val_loss: float | None
    eta_seconds: float | None


class Callback(TypedDict):
    """A webhook: POST the job to ``url`` when it reaches one of ``events`` (store.webhooks)."""

    url: str
    events: list[str]


class JobError(TypedDict):
    code: str  # diverged, timeout, crashed, invalid_spec, dataset_missing, internal_error, ...
    message: str


class JobRecord(TypedDict, total=False):
    """A job's hash (``keys.job_key``), one JSON value per field; the API and workers share it.

    ``create_job`` writes the first nine (and ``callbacks``, when given); the others appear
    as the job goes.
    """

    id: str
    status: JobStatus
    created_at: str
    epochs: int
    attempts: int
    max_runtime_seconds: float | None
    tenant: str
    dataset_id: str | None
    request_id: str | None  # the submitting request's X-Request-ID: the job's log lines carry it
    rq_job_id: str  # the current attempt's rq job, ``<id>-<enqueue number>``
    enqueues: int
    crashes: int
    started_at: str | None
    ended_at: str
    progress: Progress
    runtime_seconds: float
    cancel_requested: bool
    error: JobError
    model_id: str | None
    model_deleted: bool
    callbacks: list[Callback]
    name: str | None  # store.labels bounds these three; PATCH /v1/jobs/{id} edits them
    tags: list[str]
    metadata: dict
    sweep_id: str | None  # the sweep this job is a trial of (store.sweeps)
    parameters: dict | None  # a trial's values, by spec path
    objective_value: float | None  # a trial's best objective so far (store.sweeps)


def idle_progress(epochs: int) -> Progress:
    """The progress of a job no worker has reported on yet."""
    return {"epoch": 0, "epochs": epochs, "loss": None, "val_loss": None, "eta_seconds": None}


def create_job(
    conn: redis.Redis,
    job_id: str,
    spec: dict,
    arrays: dict,
    epochs: int,
    max_runtime_seconds: float | None = None,
    tenant: str = PUBLIC_TENANT,
    dataset_id: str | None = None,
    callbacks: list[Callback] | None = None,
    request_id: str | None = None,
    *,
    name: str | None = None,
    tags: list[str] | None = None,
    metadata: dict | None = None,
    sweep_id: str | None = None,
    parameters: dict | None = None,
) -> JobRecord:
    """Store a new queued job: its spec as JSON and its arrays as npy, in one transaction.

    Args:
        spec: the job's network, training and initial weights, JSON-able.
        arrays: ``{"X": ndarray, "y": ndarray, "X_val"?: ..., "y_val"?: ...}``; without X and
            y when ``dataset_id`` names the training data.
        max_runtime_seconds: training time allowed over all attempts.
        tenant: the owner; only it (and admins) can see the job and its model.
        dataset_id: a stored dataset to train on; it is referenced, not copied.
        callbacks: webhooks to call as the job starts and ends.
        request_id: the id of the request that submitted it, for the job's log lines.
        name, tags, metadata: what the owner calls and marks it with (``store.labels``).
        sweep_id: the sweep it is a trial of; parameters: the trial's values by spec path.

    Raises:
        ValueError: name, tags or metadata out of ``store.labels``'s bounds.
    """
    labels.check(name, tags, metadata)
    # One time for the record and the indexes (created_at shows it to the millisecond).
    created = time.time()
    record: JobRecord = {
        "id": job_id,
        "status": JobStatus.QUEUED,
        "created_at": iso_from_timestamp(created),
        "epochs": epochs,
        "attempts": 0,
        "max_runtime_seconds": max_runtime_seconds,
        "tenant": tenant,
        "dataset_id": dataset_id,
        "request_id": request_id,
    }
    if callbacks:
        record["callbacks"] = callbacks
    record.update(
        name=name, tags=labels.unique_tags(tags), metadata=metadata or {}, sweep_id=sweep_id
    )
    if sweep_id is not None:
        record["parameters"] = parameters
    pipe = conn.pipeline(transaction=True)
    pipe.set(spec_key(job_id), json.dumps(spec))
    for name, array in arrays.items():
        pipe.set(array_key(job_id, name), array_to_bytes(array))
    pipe.hset(job_key(job_id), mapping={k: json.dumps(v) for k, v in record.items()})
    pipe.zadd(JOBS_INDEX, {job_id: created})
    pipe.zadd(tenant_jobs_key(tenant), {job_id: created})
    search.index_new(pipe, record, created)
    pipe.sadd(ACTIVE_JOBS, job_id)
    pipe.sadd(tenant_active_key(tenant), job_id)
    pipe.delete(reservation_key(job_id))
    pipe.execute()
    return record


def discard_job(conn: redis.Redis, job_id: str, tenant: str) -> None:
    """Undo ``create_job`` and the job's quota slot, for a submission that failed part way.

    Deletions only, outside MULTI (which Redis refuses to queue into when it is full), so they
    go through even at maxmemory.
    """
    record = get_job(conn, job_id)
    pipe = conn.pipeline(transaction=False)
    if record is not None:
        search.unindex(pipe, record, JobStatus)
    pipe.delete(job_key(job_id), spec_key(job_id), *(array_key(job_id, n) for n in ARRAY_NAMES))
    pipe.delete(reservation_key(job_id))
    pipe.zrem(JOBS_INDEX, job_id)
    pipe.zrem(tenant_jobs_key(tenant), job_id)
    pipe.srem(ACTIVE_JOBS, job_id)
    pipe.srem(tenant_active_key(tenant), job_id)
    pipe.execute()


def get_job(conn: redis.Redis, job_id: str) -> JobRecord | None:
    """The job's record, or None when there is no such job."""
    raw = conn.hgetall(job_key(job_id))
    if not raw:
        return None
    return record_from_hash(raw)


def job_view(record: JobRecord) -> dict:
    """A stored job record as the API shows it (GET /v1/jobs/{id}) and webhooks send it."""
    progress = record.get("progress") or idle_progress(record["epochs"])
    return {
        "id": record["id"],
        "status": record["status"],
        "progress": progress,
        "created_at": record.get("created_at"),
        "started_at": record.get("started_at"),
        "ended_at": record.get("ended_at"),
        "attempts": record.get("attempts", 0),
        "error": record.get("error"),
        "model_id": record.get("model_id"),
        "dataset_id": record.get("dataset_id"),
        "cancel_requested": bool(record.get("cancel_requested")),
        "max_runtime_seconds": record.get("max_runtime_seconds"),
        "callbacks": record.get("callbacks") or [],
        "name": record.get("name"),
        "tags": record.get("tags") or [],
        "metadata": record.get("metadata") or {},
        "sweep_id": record.get("sweep_id"),
        "parameters": record.get("parameters"),
    }


def update_job(conn, job_id: str, **fields) -> None:
    """Set fields of a job's record (``conn`` may be a pipeline)."""
    conn.hset(job_key(job_id), mapping={k: json.dumps(v) for k, v in fields.items()})


def list_jobs(
    conn: redis.Redis, limit: int, cursor: str | None = None, tenant: str | None = None
) -> tuple[list[JobRecord], str | None]:
    """Jobs newest first: ``(records, next_cursor)``; the cursor is the last id returned.

    Args:
        tenant: only this tenant's jobs; None lists every tenant's.

    Raises:
        KeyError: the cursor names no job in the listing.
    """
    index = JOBS_INDEX if tenant is None else tenant_jobs_key(tenant)
    return paging.newest_first(conn, index, job_key, limit, cursor)


def load_spec(conn: redis.Redis, job_id: str) -> dict:
    return json.loads(conn.get(spec_key(job_id)))


def load_spec_and_arrays(conn: redis.Redis, job_id: str) -> tuple[dict, dict]:
    """The spec and ``{"X": ..., "y": ..., ...}`` as stored by ``create_job``, in one round
    trip (a worker's per-job cost)."""
    pipe = conn.pipeline(transaction=False)
    pipe.get(spec_key(job_id))
    pipe.mget([array_key(job_id, n) for n in ARRAY_NAMES])
    spec, blobs = pipe.execute()
    return json.loads(spec), _arrays(blobs)


def _arrays(blobs: list) -> dict:
    return {
        n: array_from_bytes(b) for n, b in zip(ARRAY_NAMES, blobs, strict=True) if b is not None
    }


# -- attempts ----------------------------------------------------------------------------

_START_ATTEMPT = (
    """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= ARGV[1] and status ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
local started = redis.call('HGET', KEYS[1], 'started_at')
if not started or started == 'null' then redis.call('HSET', KEYS[1], 'started_at', ARGV[3]) end
"""
    # An orphaned attempt's job is started already: its followers have seen that.
    + "if status ~= ARGV[2] then\n"
    + events.lua_add_status("KEYS[2]", "ARGV[4]", final=False)
    + search.lua_index_status(3, search.status_key_count(JobStatus), "ARGV[5]")
    + "end\n"
    + "return redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
)


def start_attempt(conn: redis.Redis, job_id: str, owner: str | None = None) -> int:
    """Mark a queued (or orphaned started) job started, atomically; ``owner``, the job's
    tenant when the caller has its record (else it is read).

    Returns:
        The attempt's number, or 0 when the job has meanwhile been canceled or has ended.
    """
    tenant = owner if owner is not None else job_tenant(conn, job_id)
    attempt = int(
        eval_script(
            conn,
            _START_ATTEMPT,
            [
                job_key(job_id),
                events_key(job_id),
                *search.status_keys(tenant, JobStatus.STARTED, JobStatus),
            ],
            json.dumps(JobStatus.QUEUED),
            json.dumps(JobStatus.STARTED),
            json.dumps(now_iso()),
            str(JobStatus.STARTED),
            job_id,
        )
    )
    if attempt:
        _status_changed(conn, job_id, JobStatus.STARTED, tenant)
    return attempt


def count_crash(conn: redis.Redis, job_id: str) -> int:
    """One more attempt of this job died without finishing; returns how many have."""
    return int(conn.hincrby(job_key(job_id), "crashes", 1))


# -- the end of a job ----------------------------------------------------------------------


def finish_job(
    conn,
    job_id: str,
    data_ttl_seconds: int,
    *,
    owner: str | None = None,
    meta: dict | None = None,
    **fields,
) -> None:
    """Record a final status (``fields["status"]``) and tidy up (see ``tidy_ended_job``).

    Args:
        owner: the job's tenant, when the caller knows it (else it is read).
        meta: the ``ModelMeta`` of the model it made, when the caller has it (else it is read):
            its final metrics go into the search indexes.
    """
    tenant = owner if owner is not None else job_tenant(conn, job_id)
    if fields["status"] != JobStatus.FINISHED or not fields.get("model_id"):
        meta = None
    elif meta is None:
        meta = load_model_meta(conn, fields["model_id"])
    pipe = conn.pipeline(transaction=True)
    update_job(pipe, job_id, **fields)
    events.add_status(pipe, job_id, fields["status"], final=True)
    search.index_status(pipe, tenant, job_id, fields["status"], JobStatus)
    if meta is not None:
        search.index_metrics(pipe, tenant, job_id, meta)
    _tidy(conn, pipe, job_id, data_ttl_seconds, tenant)
    pipe.execute()
    _status_changed(conn, job_id, fields["status"], tenant)


def mark_queued(conn, job_id: str) -> None:
    """Put a job whose attempt was interrupted back to ``queued`` (before it is requeued)."""
    tenant = job_tenant(conn, job_id)
    pipe = conn.pipeline(transaction=True)
    update_job(pipe, job_id, status=JobStatus.QUEUED)
    events.add_status(pipe, job_id, JobStatus.QUEUED, final=False)
    search.index_status(pipe, tenant, job_id, JobStatus.QUEUED, JobStatus)
    pipe.execute()


def tidy_ended_job(conn, job_id: str, data_ttl_seconds: int) -> None:
    """After a job ends: its checkpoint and cancel flag go, its training data expires, and it
    no longer counts as active or against its tenant's quota."""
    pipe = conn.pipeline(transaction=True)
    _tidy(conn, pipe, job_id, data_ttl_seconds)
    pipe.execute()


def job_tenant(conn, job_id: str) -> str:
    """The job's owner (``public`` for a job stored before tenants were)."""
    raw = conn.hget(job_key(job_id), "tenant")
    return PUBLIC_TENANT if raw is None else json.loads(raw)


def _tidy(conn, pipe, job_id: str, data_ttl_seconds: int, tenant: str | None = None) -> None:
    if tenant is None:
        tenant = job_tenant(conn, job_id)
    pipe.srem(tenant_active_key(tenant), job_id)
    pipe.srem(ACTIVE_JOBS, job_id)
    pipe.delete(checkpoint_key(job_id), cancel_key(job_id))
    for name in ARRAY_NAMES:
        pipe.expire(array_key(job_id, name), data_ttl_seconds)


_CANCEL_QUEUED = (
    """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'ended_at', ARGV[3], 'cancel_requested', 'true')
redis.call('SET', KEYS[2], ARGV[4], 'EX', 86400)
redis.call('SREM', KEYS[3], ARGV[5])
redis.call('SREM', KEYS[4], ARGV[5])
"""
    + events.lua_add_status("KEYS[5]", "ARGV[6]", final=True)
    + search.lua_index_status(6, search.status_key_count(JobStatus), "ARGV[5]")
    + "return 1\n"
)


def cancel_if_queued(conn: redis.Redis, job_id: str, ended_at: str, tenant: str) -> bool:
    """Cancel a job still waiting in the queue, atomically; False when it has left the queue.

    The cancel flag is set too, so a worker that dequeued it at this very moment stops it.
    """
    canceled = bool(
        eval_script(
            conn,
            _CANCEL_QUEUED,
            [
                job_key(job_id),
                cancel_key(job_id),
                ACTIVE_JOBS,
                tenant_active_key(tenant),
                events_key(job_id),
                *search.status_keys(tenant, JobStatus.CANCELED, JobStatus),
            ],
            json.dumps(JobStatus.QUEUED),
            json.dumps(JobStatus.CANCELED),
            json.dumps(ended_at),
            time.time(),
            job_id,
            str(JobStatus.CANCELED),
        )
    )
    if canceled:
        _status_changed(conn, job_id, JobStatus.CANCELED, tenant)
    return canceled


def _status_changed(conn: redis.Redis, job_id: str, status: JobStatus, tenant: str) -> None:
    """A job of ``tenant`` has just become ``status``: queue the webhook deliveries it asked
    for, and a sweep's next trial when a trial has ended."""
    # Imported here: store.webhooks reads job records and queues through this module.
    from . import sweeps
    from .webhooks import job_event

    # One read tells whether either has anything to do: for most jobs, neither has. What it
    # read is handed on, not read again.
    callbacks, sweep_id = map(json_or_none, conn.hmget(job_key(job_id), "callbacks", "sweep_id"))
    if callbacks:
        job_event(conn, job_id, status)
    if status in FINAL_STATUSES and sweep_id is not None:
        sweeps.trial_ended(conn, job_id, sweep_id, tenant)
