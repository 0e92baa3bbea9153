"""Progress, history columns (raw little-endian float64, written per flush) and checkpoints."""

import numpy as np
import redis

from . import events
from .codecs import ROW_BYTES, history_values
from .jobs import update_job
from .keys import cancel_key, checkpoint_key, history_columns_key, history_key


def flush_progress(
    conn, job_id: str, progress: dict, history: dict, start: int, runtime_seconds: float = 0.0
) -> bool:
    """Write progress and buffered history columns in one pipelined round trip, with the
    job's ``progress`` event (``store.events``) in the same transaction.

    Idempotent: the rows are written at their place (SETRANGE at ``start``), not appended, so a
    flush whose reply was lost (Redis went away after executing it) can be sent again without
    storing its rows twice.

    Args:
        progress: ``{epoch, epochs, loss, val_loss, eta_seconds}``.
        history: ``{column: [float, ...]}`` entries since the last flush.
        start: the index of the first of those entries (the number already stored).
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
            rows = np.asarray(values, "<f8").tobytes()
            pipe.setrange(history_key(job_id, column), start * ROW_BYTES, rows)
    events.add_progress(pipe, job_id, progress["epoch"])
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
    end = -1 if limit is None else (offset + limit) * ROW_BYTES - 1
    if limit == 0:
        return {column: [] for column in columns}
    pipe = conn.pipeline(transaction=False)
    for column in columns:
        pipe.getrange(history_key(job_id, column), offset * ROW_BYTES, end)
    blobs = pipe.execute()
    return {c: history_values(c, blob) for c, blob in zip(columns, blobs, strict=True)}


# -- checkpoints -------------------------------------------------------------------------


def save_checkpoint(conn, job_id: str, blob: bytes) -> None:
    """Replace the job's checkpoint; a single SET, so a reader sees the old or the new one."""
    conn.set(checkpoint_key(job_id), blob)


def load_checkpoint(conn: redis.Redis, job_id: str) -> bytes | None:
    return conn.get(checkpoint_key(job_id))
