"""Every Redis key name and all (de)serialisation, for the API and the workers alike.

Specs and small records are JSON, arrays are npy bytes, models and checkpoints are the
engine's npz bytes, and history columns are raw little-endian float64 appended per flush.
Nothing here is pickled, and nothing here imports Flask or rq.
"""

import enum
import io
import json
import os
import time
import uuid
from datetime import UTC, datetime

import numpy as np
import redis

PREFIX = "bp"
QUEUE_NAME = "training"
TASK = "workers.tasks.train_job"
JOBS_INDEX = f"{PREFIX}:jobs"


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


def model_key(model_id: str) -> str:
    return f"{PREFIX}:model:{model_id}"


def model_meta_key(model_id: str) -> str:
    return f"{PREFIX}:model:{model_id}:meta"


# -- arrays ------------------------------------------------------------------------------


def array_to_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def array_from_bytes(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


# -- jobs --------------------------------------------------------------------------------


def create_job(conn: redis.Redis, job_id: str, spec: dict, arrays: dict, epochs: int) -> dict:
    """Store a new queued job: its spec as JSON and its arrays as npy, in one transaction.

    Args:
        spec: the job's network, training and initial weights, JSON-able.
        arrays: ``{"X": ndarray, "y": ndarray, "X_val"?: ..., "y_val"?: ...}``.
    """
    record = {
        "id": job_id,
        "status": JobStatus.QUEUED,
        "created_at": now_iso(),
        "epochs": epochs,
        "attempts": 0,
    }
    pipe = conn.pipeline(transaction=True)
    pipe.set(spec_key(job_id), json.dumps(spec))
    for name, array in arrays.items():
        pipe.set(array_key(job_id, name), array_to_bytes(array))
    pipe.hset(job_key(job_id), mapping={k: json.dumps(v) for k, v in record.items()})
    pipe.zadd(JOBS_INDEX, {job_id: time.time()})
    pipe.execute()
    return record


def get_job(conn: redis.Redis, job_id: str) -> dict | None:
    """The job's record, or None when there is no such job."""
    raw = conn.hgetall(job_key(job_id))
    if not raw:
        return None
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def update_job(conn, job_id: str, **fields) -> None:
    """Set fields of a job's record (``conn`` may be a pipeline)."""
    conn.hset(job_key(job_id), mapping={k: json.dumps(v) for k, v in fields.items()})


def list_jobs(conn: redis.Redis, limit: int, cursor: str | None = None) -> tuple[list, str | None]:
    """Jobs newest first: ``(records, next_cursor)``; the cursor is the last id returned.

    Raises:
        KeyError: the cursor names no job.
    """
    start = 0
    if cursor is not None:
        rank = conn.zrevrank(JOBS_INDEX, cursor)
        if rank is None:
            raise KeyError(cursor)
        start = rank + 1
    ids = [i.decode() for i in conn.zrevrange(JOBS_INDEX, start, start + limit)]
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
    names = ("X", "y", "X_val", "y_val")
    blobs = conn.mget([array_key(job_id, n) for n in names])
    return {n: array_from_bytes(b) for n, b in zip(names, blobs, strict=True) if b is not None}


# -- progress and history ----------------------------------------------------------------


def flush_progress(conn, job_id: str, progress: dict, history: dict) -> None:
    """Write progress and append buffered history columns in one pipelined round trip.

    Args:
        progress: ``{epoch, epochs, loss, val_loss, eta_seconds}``.
        history: ``{column: [float, ...]}`` entries since the last flush.
    """
    pipe = conn.pipeline(transaction=True)
    update_job(pipe, job_id, progress=progress)
    if history:
        pipe.sadd(history_columns_key(job_id), *history)
    for column, values in history.items():
        if values:
            pipe.append(history_key(job_id, column), np.asarray(values, "<f8").tobytes())
    pipe.execute()


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


def load_history(conn: redis.Redis, job_id: str) -> dict:
    """``{column: [values]}``; epoch numbers come back as ints."""
    columns = sorted(c.decode() for c in conn.smembers(history_columns_key(job_id)))
    blobs = conn.mget([history_key(job_id, c) for c in columns]) if columns else []
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
