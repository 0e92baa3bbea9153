"""Every Redis key name and all (de)serialisation, for the API and the workers alike.

Specs and small records are JSON, arrays are npy bytes, models and checkpoints are the
engine's npz bytes, and history columns are raw little-endian float64 appended per flush.
Nothing here is pickled, and nothing here imports Flask or rq.
"""

import enum
import hashlib
import io
import json
import os
import time
import uuid
from datetime import UTC, datetime

import numpy as np
import redis

PREFIX = "bp"
JOBS_INDEX = f"{PREFIX}:jobs"
ACTIVE_JOBS = f"{PREFIX}:jobs:active"  # queued and started jobs, which the reaper watches
RATE_LIMIT_PREFIX = f"{PREFIX}:ratelimit"  # flask-limiter's counters live under this
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# A key whose first request has not stored its job yet; a crashed request frees it this soon.
IDEMPOTENCY_PENDING_SECONDS = 60
CANCEL_FLAG_TTL_SECONDS = 7 * 24 * 3600
DATA_TTL_SECONDS = 7 * 24 * 3600  # default time a job's training arrays outlive the job
ARRAY_NAMES = ("X", "y", "X_val", "y_val")


class JobStatus(enum.StrEnum):
    """Job statuses, in rq's words."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_STATUSES = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED})


def connect(url: str | None = None) -> redis.Redis:
    """A client for ``url`` (default: the REDIS_URL environment variable)."""
    url = url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=10
    )


# Redis 6 reports a write refused at maxmemory inside a Lua script as a plain script error
# ("ERR Error running script ... -OOM command not allowed ..."), not as an OOM error.
_OOM_MESSAGE = "command not allowed when used memory > 'maxmemory'"


def _eval(conn: redis.Redis, script: str, keys: list, *args):
    """EVAL ``script``; a write it could not make because Redis is full raises
    ``redis.exceptions.OutOfMemoryError``, as the same write outside a script does."""
    try:
        return conn.eval(script, len(keys), *keys, *args)
    except redis.exceptions.OutOfMemoryError:
        raise
    except redis.exceptions.ResponseError as exc:
        if _OOM_MESSAGE in str(exc):
            raise redis.exceptions.OutOfMemoryError(str(exc)) from exc
        raise


def new_id() -> str:
    return uuid.uuid4().hex


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- key names ---------------------------------------------------------------------------


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def spec_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:spec"


def array_key(job_id: str, name: str) -> str:
    return f"{PREFIX}:job:{job_id}:array:{name}"


def history_key(job_id: str, column: str) -> str:
    return f"{PREFIX}:job:{job_id}:history:{column}"


def history_columns_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:history"


def checkpoint_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:checkpoint"


def tenant_jobs_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}:jobs"


def tenant_active_key(tenant: str) -> str:
    """Queued and started jobs of one tenant, which its quota counts."""
    return f"{PREFIX}:tenant:{tenant}:active"


def lease_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:lease"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:cancel"


def idempotency_key(scope: str, key: str) -> str:
    return f"{PREFIX}:idempotency:{scope}:{key}"


def model_key(model_id: str) -> str:
    return f"{PREFIX}:model:{model_id}"


def model_meta_key(model_id: str) -> str:
    return f"{PREFIX}:model:{model_id}:meta"


def dataset_key(dataset_id: str) -> str:
    return f"{PREFIX}:dataset:{dataset_id}"


def dataset_array_key(dataset_id: str, name: str) -> str:
    return f"{PREFIX}:dataset:{dataset_id}:array:{name}"


# -- arrays ------------------------------------------------------------------------------


def array_to_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def array_from_bytes(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _npy_parts(array: np.ndarray) -> tuple[bytes, memoryview]:
    """``array_to_bytes(array)`` as its header and a view of the data, which is not copied."""
    array = np.ascontiguousarray(array)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    return buf.getvalue(), memoryview(array).cast("B")


# -- jobs --------------------------------------------------------------------------------


def create_job(
    conn: redis.Redis,
    job_id: str,
    spec: dict,
    arrays: dict,
    epochs: int,
    max_runtime_seconds: float | None = None,
    tenant: str = "public",
    dataset_id: str | None = None,
) -> dict:
    """Store a new queued job: its spec as JSON and its arrays as npy, in one transaction.

    Args:
        spec: the job's network, training and initial weights, JSON-able.
        arrays: ``{"X": ndarray, "y": ndarray, "X_val"?: ..., "y_val"?: ...}``; without X and
            y when ``dataset_id`` names the training data.
        max_runtime_seconds: training time allowed over all attempts.
        tenant: the owner; only it (and admins) can see the job and its model.
        dataset_id: a stored dataset to train on; it is referenced, not copied.
    """
    record = {
        "id": job_id,
        "status": JobStatus.QUEUED,
        "created_at": now_iso(),
        "epochs": epochs,
        "attempts": 0,
        "max_runtime_seconds": max_runtime_seconds,
        "tenant": tenant,
        "dataset_id": dataset_id,
    }
    pipe = conn.pipeline(transaction=True)
    pipe.set(spec_key(job_id), json.dumps(spec))
    for name, array in arrays.items():
        pipe.set(array_key(job_id, name), array_to_bytes(array))
    pipe.hset(job_key(job_id), mapping={k: json.dumps(v) for k, v in record.items()})
    created = time.time()
    pipe.zadd(JOBS_INDEX, {job_id: created})
    pipe.zadd(tenant_jobs_key(tenant), {job_id: created})
    pipe.sadd(ACTIVE_JOBS, job_id)
    pipe.sadd(tenant_active_key(tenant), job_id)
    pipe.execute()
    return record


def discard_job(conn: redis.Redis, job_id: str, tenant: str) -> None:
    """Undo ``create_job`` and the job's quota slot, for a submission that failed part way.

    Deletions only, outside MULTI (which Redis refuses to queue into when it is full), so they
    go through even at maxmemory.
    """
    pipe = conn.pipeline(transaction=False)
    pipe.delete(job_key(job_id), spec_key(job_id), *(array_key(job_id, n) for n in ARRAY_NAMES))
    pipe.zrem(JOBS_INDEX, job_id)
    pipe.zrem(tenant_jobs_key(tenant), job_id)
    pipe.srem(ACTIVE_JOBS, job_id)
    pipe.srem(tenant_active_key(tenant), job_id)
    pipe.execute()


def get_job(conn: redis.Redis, job_id: str) -> dict | None:
    """The job's record, or None when there is no such job."""
    raw = conn.hgetall(job_key(job_id))
    if not raw:
        return None
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def update_job(conn, job_id: str, **fields) -> None:
    """Set fields of a job's record (``conn`` may be a pipeline)."""
    conn.hset(job_key(job_id), mapping={k: json.dumps(v) for k, v in fields.items()})


def list_jobs(
    conn: redis.Redis, limit: int, cursor: str | None = None, tenant: str | None = None
) -> tuple[list, str | None]:
    """Jobs newest first: ``(records, next_cursor)``; the cursor is the last id returned.

    Args:
        tenant: only this tenant's jobs; None lists every tenant's.

    Raises:
        KeyError: the cursor names no job in the listing.
    """
    index = JOBS_INDEX if tenant is None else tenant_jobs_key(tenant)
    start = 0
    if cursor is not None:
        rank = conn.zrevrank(index, cursor)
        if rank is None:
            raise KeyError(cursor)
        start = rank + 1
    ids = [i.decode() for i in conn.zrevrange(index, start, start + limit)]
    more = len(ids) > limit
    ids = ids[:limit]
    pipe = conn.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(job_key(job_id))
    records = [{k.decode(): json.loads(v) for k, v in raw.items()} for raw in pipe.execute() if raw]
    return records, (ids[-1] if more and ids else None)


def load_spec(conn: redis.Redis, job_id: str) -> dict:
    return json.loads(conn.get(spec_key(job_id)))


def load_arrays(conn: redis.Redis, job_id: str) -> dict:
    """``{"X": ..., "y": ..., ...}`` as stored by ``create_job``."""
    blobs = conn.mget([array_key(job_id, n) for n in ARRAY_NAMES])
    return {
        n: array_from_bytes(b) for n, b in zip(ARRAY_NAMES, blobs, strict=True) if b is not None
    }


# -- datasets ----------------------------------------------------------------------------

DATASET_FORMAT = "backprop.dataset/1"


def dataset_sha256(X: np.ndarray, y: np.ndarray) -> str:
    """The SHA-256 of a dataset's content: dtype, shapes, then X and y as little-endian bytes.

    X and y share one dtype; equal arrays give equal digests whatever their memory layout.
    """
    digest = hashlib.sha256()
    header = {"format": DATASET_FORMAT, "dtype": X.dtype.name, "X": X.shape, "y": y.shape}
    digest.update(json.dumps(header, sort_keys=True).encode() + b"\n")
    for array in (X, y):
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        digest.update(memoryview(little).cast("B"))
    return digest.hexdigest()


def dataset_id_for(tenant: str, sha256: str) -> str:
    """A dataset's id: the same content uploaded by the same tenant has the same id."""
    return hashlib.sha256(f"{tenant}\n{sha256}".encode()).hexdigest()[:32]


def create_dataset(
    conn: redis.Redis, tenant: str, X: np.ndarray, y: np.ndarray, classes: list | None
) -> tuple[dict, bool]:
    """Store a dataset once: its arrays as npy and a JSON record, keyed by its content.

    Args:
        X: inputs of shape (rows, columns); y: targets of shape (rows, outputs), same dtype.
        classes: the sorted distinct labels when y is one column of integers, else None.

    Returns:
        ``(record, created)``; ``created`` is False when the tenant already has this dataset,
        and then nothing is written.
    """
    sha = dataset_sha256(X, y)
    dataset_id = dataset_id_for(tenant, sha)
    existing = get_dataset(conn, dataset_id)
    if existing is not None:
        return existing, False
    record = {
        "id": dataset_id,
        "tenant": tenant,
        "rows": int(X.shape[0]),
        "columns": int(X.shape[1]),
        "outputs": int(y.shape[1]),
        "dtype": X.dtype.name,
        "sha256": sha,
        "created_at": now_iso(),
        "classes": classes,
    }
    pipe = conn.pipeline(transaction=True)
    for name, array in (("X", X), ("y", y)):
        # Header, then the data appended from a view: no second copy of a large upload here.
        header, data = _npy_parts(array)
        pipe.set(dataset_array_key(dataset_id, name), header)
        pipe.append(dataset_array_key(dataset_id, name), data)
    pipe.set(dataset_key(dataset_id), json.dumps(record), nx=True)
    if pipe.execute()[-1]:
        return record, True
    return get_dataset(conn, dataset_id) or record, False  # an identical upload won the race


def get_dataset(conn: redis.Redis, dataset_id: str) -> dict | None:
    """The dataset's record, or None when there is no such dataset."""
    raw = conn.get(dataset_key(dataset_id))
    return None if raw is None else json.loads(raw)


def load_dataset_arrays(conn: redis.Redis, dataset_id: str) -> dict | None:
    """``{"X": ..., "y": ...}``, or None when the dataset has been deleted."""
    blobs = conn.mget([dataset_array_key(dataset_id, n) for n in ("X", "y")])
    if any(blob is None for blob in blobs):
        return None
    return {n: array_from_bytes(b) for n, b in zip(("X", "y"), blobs, strict=True)}


def delete_dataset(conn: redis.Redis, dataset_id: str) -> bool:
    """Remove a dataset; True when there was one. Jobs that still need it will fail."""
    keys = [dataset_key(dataset_id)] + [dataset_array_key(dataset_id, n) for n in ("X", "y")]
    return bool(conn.delete(*keys))


# -- progress and history ----------------------------------------------------------------


def flush_progress(
    conn, job_id: str, progress: dict, history: dict, runtime_seconds: float = 0.0
) -> bool:
    """Write progress and append buffered history columns in one pipelined round trip.

    Args:
        progress: ``{epoch, epochs, loss, val_loss, eta_seconds}``.
        history: ``{column: [float, ...]}`` entries since the last flush.
        runtime_seconds: training time the job has used over all its attempts.

    Returns:
        True when a cancel has been requested (read in the same round trip).
    """
    pipe = conn.pipeline(transaction=True)
    update_job(pipe, job_id, progress=progress, runtime_seconds=runtime_seconds)
    if history:
        pipe.sadd(history_columns_key(job_id), *history)
    for column, values in history.items():
        if values:
            pipe.append(history_key(job_id, column), np.asarray(values, "<f8").tobytes())
    pipe.exists(cancel_key(job_id))
    return bool(pipe.execute()[-1])


def replace_history(conn, job_id: str, history: dict) -> None:
    """Overwrite the stored history with ``history`` (after resuming from a checkpoint)."""
    pipe = conn.pipeline(transaction=True)
    for column in conn.smembers(history_columns_key(job_id)):
        pipe.delete(history_key(job_id, column.decode()))
    pipe.delete(history_columns_key(job_id))
    if history:
        pipe.sadd(history_columns_key(job_id), *history)
    for column, values in history.items():
        pipe.set(history_key(job_id, column), np.asarray(values, "<f8").tobytes())
    pipe.execute()


def load_history(conn: redis.Redis, job_id: str, offset: int = 0, limit: int | None = None) -> dict:
    """``{column: [values]}`` for entries ``offset`` to ``offset + limit`` (all by default);
    epoch numbers come back as ints. Only the requested bytes leave Redis (GETRANGE)."""
    columns = sorted(c.decode() for c in conn.smembers(history_columns_key(job_id)))
    if not columns:
        return {}
    end = -1 if limit is None else (offset + limit) * 8 - 1
    if limit == 0:
        return {column: [] for column in columns}
    pipe = conn.pipeline(transaction=False)
    for column in columns:
        pipe.getrange(history_key(job_id, column), offset * 8, end)
    blobs = pipe.execute()
    out = {}
    for column, blob in zip(columns, blobs, strict=True):
        values = np.frombuffer(blob or b"", "<f8")
        out[column] = values.astype(int).tolist() if column == "epoch" else values.tolist()
    return out


# -- checkpoints -------------------------------------------------------------------------


def save_checkpoint(conn, job_id: str, blob: bytes) -> None:
    """Replace the job's checkpoint; a single SET, so a reader sees the old or the new one."""
    conn.set(checkpoint_key(job_id), blob)


def load_checkpoint(conn: redis.Redis, job_id: str) -> bytes | None:
    return conn.get(checkpoint_key(job_id))


# -- models ------------------------------------------------------------------------------


def save_model(conn, model_id: str, blob: bytes, meta: dict) -> None:
    """Store a model's bytes and its JSON description; models are never rewritten."""
    pipe = conn.pipeline(transaction=True)
    pipe.set(model_key(model_id), blob, nx=True)
    pipe.set(model_meta_key(model_id), json.dumps(meta), nx=True)
    pipe.execute()


def load_model_meta(conn: redis.Redis, model_id: str) -> dict | None:
    raw = conn.get(model_meta_key(model_id))
    return None if raw is None else json.loads(raw)


def load_model_bytes(conn: redis.Redis, model_id: str) -> bytes | None:
    return conn.get(model_key(model_id))


def model_exists(conn: redis.Redis, model_id: str) -> bool:
    return bool(conn.exists(model_key(model_id)))


def delete_model(conn: redis.Redis, model_id: str) -> bool:
    """Remove a model, and its id from the job that made it; True when there was one."""
    pipe = conn.pipeline(transaction=True)
    pipe.delete(model_key(model_id), model_meta_key(model_id))
    # A model's id is its job's id.
    pipe.hset(job_key(model_id), mapping={"model_id": "null", "model_deleted": "true"})
    deleted = pipe.execute()[0]
    return bool(deleted)


# -- queue bookkeeping -------------------------------------------------------------------


def next_enqueue_number(conn: redis.Redis, job_id: str) -> int:
    """1 for the first enqueue of a job, then 2, 3, ... for each requeue."""
    return int(conn.hincrby(job_key(job_id), "enqueues", 1))


# -- leases: which worker runs a job, and whether it is still alive -------------------------

# Extend the lease if we hold it; take it if nobody does. 1 when we hold it afterwards.
_RENEW = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def acquire_lease(conn: redis.Redis, job_id: str, owner: str, ttl_ms: int) -> bool:
    """Take the job for ``owner`` unless a live worker holds it; marks the job active."""
    if not conn.set(lease_key(job_id), owner, nx=True, px=ttl_ms):
        return False
    conn.sadd(ACTIVE_JOBS, job_id)
    return True


def renew_lease(conn: redis.Redis, job_id: str, owner: str, ttl_ms: int) -> bool:
    """Keep holding the job; False when another worker has taken it over."""
    return bool(_eval(conn, _RENEW, [lease_key(job_id)], owner, ttl_ms))


def release_lease(conn: redis.Redis, job_id: str, owner: str) -> None:
    _eval(conn, _RELEASE, [lease_key(job_id)], owner)


def active_jobs(conn: redis.Redis) -> list[str]:
    return [j.decode() for j in conn.smembers(ACTIVE_JOBS)]


def lease_holder(conn: redis.Redis, job_id: str) -> str | None:
    owner = conn.get(lease_key(job_id))
    return None if owner is None else owner.decode()


def claim_orphan(conn: redis.Redis, job_id: str, ttl_ms: int) -> bool:
    """True for exactly one caller when a started job has lost its worker."""
    return bool(conn.set(f"{lease_key(job_id)}:reaping", 1, nx=True, px=ttl_ms))


def deactivate(conn, job_id: str) -> None:
    conn.srem(ACTIVE_JOBS, job_id)


# -- cancellation ------------------------------------------------------------------------


def request_cancel(conn: redis.Redis, job_id: str) -> None:
    """Ask the worker running the job to stop it at its next epoch boundary."""
    pipe = conn.pipeline(transaction=True)
    pipe.set(cancel_key(job_id), time.time(), nx=True, ex=CANCEL_FLAG_TTL_SECONDS)
    update_job(pipe, job_id, cancel_requested=True)
    pipe.execute()


def cancel_requested_at(conn: redis.Redis, job_id: str) -> float | None:
    raw = conn.get(cancel_key(job_id))
    return None if raw is None else float(raw)


# -- idempotency -------------------------------------------------------------------------


def remember_idempotent(conn: redis.Redis, scope: str, key: str, body_hash: str, job_id: str):
    """Bind ``key`` to a request body and job: for a minute until ``confirm_idempotent``, then
    for 24 h.

    Returns:
        None when the key is new (the caller creates ``job_id``), else the stored
        ``{"hash", "job_id"}`` of the first request.
    """
    name = idempotency_key(scope, key)
    if conn.set(name, _bound(body_hash, job_id), nx=True, ex=IDEMPOTENCY_PENDING_SECONDS):
        return None
    raw = conn.get(name)
    return None if raw is None else json.loads(raw)


_FORGET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def forget_idempotent(conn: redis.Redis, scope: str, key: str, body_hash: str, job_id: str):
    """Free ``key`` when the request that bound it to ``job_id`` stored no job, so that a retry
    is handled afresh instead of waiting out IDEMPOTENCY_PENDING_SECONDS."""
    _eval(conn, _FORGET, [idempotency_key(scope, key)], _bound(body_hash, job_id))


def _bound(body_hash: str, job_id: str) -> str:
    return json.dumps({"hash": body_hash, "job_id": job_id})


def confirm_idempotent(conn: redis.Redis, scope: str, key: str) -> None:
    """The job of ``key`` is stored: keep the key for 24 h."""
    conn.expire(idempotency_key(scope, key), IDEMPOTENCY_TTL_SECONDS)


# -- attempts ----------------------------------------------------------------------------

_START_ATTEMPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= ARGV[1] and status ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
local started = redis.call('HGET', KEYS[1], 'started_at')
if not started or started == 'null' then redis.call('HSET', KEYS[1], 'started_at', ARGV[3]) end
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""


def start_attempt(conn: redis.Redis, job_id: str) -> int:
    """Mark a queued (or orphaned started) job started, atomically.

    Returns:
        The attempt's number, or 0 when the job has meanwhile been canceled or has ended.
    """
    return int(
        _eval(
            conn,
            _START_ATTEMPT,
            [job_key(job_id)],
            json.dumps(JobStatus.QUEUED),
            json.dumps(JobStatus.STARTED),
            json.dumps(now_iso()),
        )
    )


def count_crash(conn: redis.Redis, job_id: str) -> int:
    """One more attempt of this job died without finishing; returns how many have."""
    return int(conn.hincrby(job_key(job_id), "crashes", 1))


# -- the end of a job ----------------------------------------------------------------------


def finish_job(conn, job_id: str, data_ttl_seconds: int, **fields) -> None:
    """Record a final status and tidy up (see ``tidy_ended_job``)."""
    pipe = conn.pipeline(transaction=True)
    update_job(pipe, job_id, **fields)
    _tidy(conn, pipe, job_id, data_ttl_seconds)
    pipe.execute()


def tidy_ended_job(conn, job_id: str, data_ttl_seconds: int) -> None:
    """After a job ends: its checkpoint and cancel flag go, its training data expires, and it
    no longer counts as active or against its tenant's quota."""
    pipe = conn.pipeline(transaction=True)
    _tidy(conn, pipe, job_id, data_ttl_seconds)
    pipe.execute()


def _tidy(conn, pipe, job_id: str, data_ttl_seconds: int) -> None:
    tenant = json.loads(conn.hget(job_key(job_id), "tenant") or '"public"')
    pipe.srem(tenant_active_key(tenant), job_id)
    pipe.srem(ACTIVE_JOBS, job_id)
    pipe.delete(checkpoint_key(job_id), cancel_key(job_id))
    for name in ARRAY_NAMES:
        pipe.expire(array_key(job_id, name), data_ttl_seconds)


_CANCEL_QUEUED = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'ended_at', ARGV[3], 'cancel_requested', 'true')
redis.call('SET', KEYS[2], ARGV[4], 'EX', 86400)
redis.call('SREM', KEYS[3], ARGV[5])
redis.call('SREM', KEYS[4], ARGV[5])
return 1
"""


def cancel_if_queued(conn: redis.Redis, job_id: str, ended_at: str, tenant: str) -> bool:
    """Cancel a job still waiting in the queue, atomically; False when it has left the queue.

    The cancel flag is set too, so a worker that dequeued it at this very moment stops it.
    """
    return bool(
        _eval(
            conn,
            _CANCEL_QUEUED,
            [job_key(job_id), cancel_key(job_id), ACTIVE_JOBS, tenant_active_key(tenant)],
            json.dumps(JobStatus.QUEUED),
            json.dumps(JobStatus.CANCELED),
            json.dumps(ended_at),
            time.time(),
            job_id,
        )
    )


# -- quotas ------------------------------------------------------------------------------

_RESERVE = """
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""


def reserve_job_slot(conn: redis.Redis, tenant: str, job_id: str, cap: int) -> bool:
    """Count ``job_id`` against the tenant's cap of queued plus started jobs, if there is room."""
    return bool(_eval(conn, _RESERVE, [tenant_active_key(tenant)], job_id, cap))
