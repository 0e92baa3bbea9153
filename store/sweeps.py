"""Hyperparameter sweeps: the sweep's record, its trials (ordinary jobs with a ``sweep_id``),
which of them wait for their turn, and the hand-over from an ended trial to the next.

The ``parallel`` cap holds in Redis, not in the workers: only the trials in the sweep's
``running`` set are ever handed to rq; the others wait in its ``pending`` list, out of the rq
queue and out of the active sets (the reaper would take a queued job that rq does not hold for
an orphan and queue it). When a trial reaches a final status, ``trial_ended`` (called from
``store.jobs``' status hook) takes it out of ``running`` and moves the next pending trial in,
in one script: however many workers are free, and whoever ends a trial (a worker, the reaper,
a cancel in the API), a sweep never has more than ``parallel`` trials in rq or on a worker.
The popped trial is then put on the queue; should that fail, it is queued and active without
an rq job, which the reaper rescues like any job whose worker died.

Quota: the sweep takes ``parallel`` of its tenant's active-job slots (``reserve_job_slot``
for its first trials) and each ended trial's slot passes to the next one. A job of the tenant
submitted in the instant between a trial's end and the hand-over can take that slot; the tenant
is then over its cap by that one job until a job of its ends.
"""

import json
import math
import time
from typing import TypedDict

import numpy as np
import redis

from . import paging, queue
from .codecs import ROW_BYTES, json_or_none, record_from_hash
from .connection import eval_script
from .coordination import request_cancel
from .jobs import JobRecord, JobStatus, get_job, job_tenant, update_job
from .keys import (
    ACTIVE_JOBS,
    history_key,
    job_key,
    sweep_key,
    sweep_pending_key,
    sweep_running_key,
    sweep_trials_key,
    tenant_active_key,
    tenant_sweeps_key,
)


class Objective(TypedDict):
    metric: str  # a history column: loss, val_loss, accuracy, ...
    goal: str  # "min" or "max"


class MedianRule(TypedDict):
    rule: str  # "median"
    min_epochs: int


class SweepRecord(TypedDict, total=False):
    """A sweep's hash (``keys.sweep_key``), one JSON value per field."""

    id: str
    tenant: str
    created_at: str
    method: str  # "grid" or "random"
    seed: int | None  # random search's seed (one is chosen when the request gives none)
    max_trials: int | None
    parameters: dict  # as requested: spec path -> {values} or a distribution
    objective: Objective
    parallel: int
    early_stopping: MedianRule | None
    trials: int
    canceled: bool
    request_id: str | None


def create_sweep(
    conn: redis.Redis, record: SweepRecord, trial_ids: list[str], parallel: int
) -> None:
    """Store a sweep whose trial jobs are stored already: the first ``parallel`` are its
    running ones (the caller queues them next), the rest wait, out of the active sets."""
    sweep_id, tenant = record["id"], record["tenant"]
    running, pending = trial_ids[:parallel], trial_ids[parallel:]
    pipe = conn.pipeline(transaction=True)
    pipe.hset(sweep_key(sweep_id), mapping={k: json.dumps(v) for k, v in record.items()})
    pipe.rpush(sweep_trials_key(sweep_id), *trial_ids)
    pipe.sadd(sweep_running_key(sweep_id), *running)
    if pending:
        pipe.rpush(sweep_pending_key(sweep_id), *pending)
    pipe.zadd(tenant_sweeps_key(tenant), {sweep_id: time.time()})
    pipe.execute()


def hold(conn: redis.Redis, job_id: str, tenant: str) -> None:
    """Take a trial that waits for its turn out of the active sets ``create_job`` put it in:
    it neither counts against the tenant's quota nor looks orphaned to the reaper."""
    pipe = conn.pipeline(transaction=False)
    pipe.srem(ACTIVE_JOBS, job_id)
    pipe.srem(tenant_active_key(tenant), job_id)
    pipe.execute()


def discard_sweep(conn: redis.Redis, sweep_id: str, tenant: str) -> None:
    """Undo ``create_sweep`` (the trial jobs are the caller's to discard)."""
    pipe = conn.pipeline(transaction=False)
    pipe.delete(sweep_key(sweep_id), sweep_trials_key(sweep_id))
    pipe.delete(sweep_pending_key(sweep_id), sweep_running_key(sweep_id))
    pipe.zrem(tenant_sweeps_key(tenant), sweep_id)
    pipe.execute()


def get_sweep(conn: redis.Redis, sweep_id: str) -> SweepRecord | None:
    raw = conn.hgetall(sweep_key(sweep_id))
    if not raw:
        return None
    return record_from_hash(raw)


def trial_ids(conn: redis.Redis, sweep_id: str) -> list[str]:
    """The sweep's trials' job ids, in trial order."""
    return [i.decode() for i in conn.lrange(sweep_trials_key(sweep_id), 0, -1)]


def list_sweeps(
    conn: redis.Redis, tenant: str, limit: int, cursor: str | None = None
) -> tuple[list[SweepRecord], str | None]:
    """The tenant's sweeps, newest first: ``(records, next_cursor)``, as ``list_jobs``.

    Raises:
        KeyError: the cursor names none of the tenant's sweeps.
    """
    index = tenant_sweeps_key(tenant)
    return paging.newest_first(conn, index, sweep_key, limit, cursor)


# -- the hand-over from an ended trial to the next ----------------------------------------

# KEYS: running set, pending list, ACTIVE_JOBS, the tenant's active set. ARGV: the ended
# trial, the job key prefix, queued as stored. A trial that was not running (canceled while it
# waited) only leaves the pending list; a running one hands its place to the first pending
# trial still queued (those canceled meanwhile are skipped). Returns that trial's id, or false.
_TRIAL_ENDED = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return false
end
while true do
  local nxt = redis.call('LPOP', KEYS[2])
  if not nxt then return false end
  if redis.call('HGET', ARGV[2] .. nxt, 'status') == ARGV[3] then
    redis.call('SADD', KEYS[1], nxt)
    redis.call('SADD', KEYS[3], nxt)
    redis.call('SADD', KEYS[4], nxt)
    return nxt
  end
end
"""


def trial_ended(
    conn: redis.Redis, job_id: str, sweep_id: str | None = None, tenant: str | None = None
) -> str | None:
    """Job ``job_id`` has reached a final status: if it is a sweep's trial, queue the sweep's
    next trial in its place. Recording the same end twice queues nothing more.

    Args:
        sweep_id, tenant: the job's, when the caller has read them (else they are read).

    Returns:
        The id of the trial queued now, if any.
    """
    if sweep_id is None:
        sweep_id = json_or_none(conn.hget(job_key(job_id), "sweep_id"))
        if sweep_id is None:
            return None  # not a trial
    if tenant is None:
        tenant = job_tenant(conn, job_id)
    keys = [
        sweep_running_key(sweep_id),
        sweep_pending_key(sweep_id),
        ACTIVE_JOBS,
        tenant_active_key(tenant),
    ]
    queued = json.dumps(JobStatus.QUEUED)
    nxt = eval_script(conn, _TRIAL_ENDED, keys, job_id, job_key(""), queued)
    if not nxt:
        return None
    nxt = nxt.decode()
    queue.enqueue(conn, get_job(conn, nxt))
    return nxt


def cancel_sweep(conn: redis.Redis, sweep_id: str) -> list[str]:
    """Mark the sweep canceled and empty its pending list, at once, so that no trial is queued
    from now on; returns its trials' ids, for the caller to cancel those still unfinished."""
    pipe = conn.pipeline(transaction=True)
    pipe.hset(sweep_key(sweep_id), "canceled", "true")
    pipe.delete(sweep_pending_key(sweep_id))
    pipe.lrange(sweep_trials_key(sweep_id), 0, -1)
    return [i.decode() for i in pipe.execute()[-1]]


# -- trials' objective values ---------------------------------------------------------------


def best_value(values, goal: str) -> float | None:
    """A trial's objective value: the best finite value of its metric over the epochs given
    (the lowest for ``goal`` min), or None when there is none.

    Args:
        values: the metric's column, or the part of it not seen yet.
    """
    column = np.asarray(values, dtype=float)
    column = column[np.isfinite(column)]
    if not column.size:
        return None
    return float(column.min() if goal == "min" else column.max())


def record_objective(conn, job_id: str, value: float | None) -> None:
    """Store a trial's objective value so far, on its job record (``conn`` may be a pipe)."""
    update_job(conn, job_id, objective_value=value)


def load_trials(conn: redis.Redis, ids: list[str]) -> list[JobRecord]:
    """The trials' job records, in one round trip; a missing one is ``{"id": ...}``."""
    pipe = conn.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(job_key(job_id))
    return [
        record_from_hash(raw) if raw else {"id": job_id}
        for job_id, raw in zip(ids, pipe.execute(), strict=True)
    ]


def values_at(conn: redis.Redis, ids: list[str], metric: str, epoch: int) -> list[float]:
    """The finite values of column ``metric`` at ``epoch`` (1-based) of those of the jobs
    ``ids`` that have reached it: one round trip reading 8 bytes a job."""
    start = (epoch - 1) * ROW_BYTES
    pipe = conn.pipeline(transaction=False)
    for job_id in ids:
        pipe.getrange(history_key(job_id, metric), start, start + ROW_BYTES - 1)
    values = [float(np.frombuffer(b, "<f8")[0]) for b in pipe.execute() if len(b) == ROW_BYTES]
    return [v for v in values if math.isfinite(v)]


def stop_trial(conn: redis.Redis, job_id: str, reason: str) -> None:
    """Record why a trial is stopped early and ask its worker to stop it: it ends
    ``canceled`` with the error ``early_stopped``."""
    update_job(conn, job_id, error={"code": "early_stopped", "message": reason})
    request_cancel(conn, job_id)
