"""Job events: a capped Redis Stream per job (``keys.events_key``) that wakes its followers.

The job record and the history columns stay the source of truth. An entry only says that
something changed: ``progress`` (a flush stored the history up to ``epoch``, at ``t``, the
worker's clock) or ``status`` (the status became ``status``). Each entry is added by the very
pipeline or script that makes the change, in its transaction, so a worker makes no extra round
trip, and a reader that takes the stream's last id together with the record misses no change
after it. Followers read history rows from the columns by offset (GETRANGE): whatever the
stream has kept, a follower that starts from an epoch gets exactly the rows after it.
"""

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import redis

from .codecs import ROW_BYTES, history_values, json_or_none
from .keys import events_key, history_columns_key, history_key, job_key

# Entries only wake followers, which then read the state itself. A few hundred cover over a
# minute of flushes (one every 0.25 s), far more than a follower falls behind by.
MAXLEN = 500
# Once a job has ended its followers read the final state from the record; the entries are
# kept a while for those still reading them, then go.
TTL_AFTER_END_SECONDS = 3600
# A follower blocks on the stream at most this long at a time: it notices a stopping server
# that soon, and its read ends well within the client's socket timeout (store.connection).
MAX_BLOCK_SECONDS = 2.0

PROGRESS = "progress"
STATUS = "status"
_STATE_FIELDS = ("status", "progress", "error", "model_id")


def add_progress(pipe, job_id: str, epoch: int) -> None:
    """Queue on ``pipe`` the entry of a flush that has stored the history up to ``epoch``."""
    fields = {"kind": PROGRESS, "epoch": epoch, "t": repr(time.time())}
    pipe.xadd(events_key(job_id), fields, maxlen=MAXLEN, approximate=True)


def add_status(pipe, job_id: str, status: str, final: bool) -> None:
    """Queue on ``pipe`` the entry of a status change; after a final one the stream expires."""
    fields = {"kind": STATUS, "status": str(status)}
    pipe.xadd(events_key(job_id), fields, maxlen=MAXLEN, approximate=True)
    if final:
        pipe.expire(events_key(job_id), TTL_AFTER_END_SECONDS)


def lua_add_status(key: str, status: str, final: bool) -> str:
    """``add_status`` as Lua, for the scripts that change a status atomically.

    Args:
        key: the Lua expression of the stream's key, e.g. ``KEYS[2]``.
        status: the Lua expression of the new status (plain, not JSON), e.g. ``ARGV[4]``.
    """
    lua = (
        f"redis.call('XADD', {key}, 'MAXLEN', '~', {MAXLEN}, '*', "
        f"'kind', '{STATUS}', 'status', {status})\n"
    )
    if final:
        lua += f"redis.call('EXPIRE', {key}, {TTL_AFTER_END_SECONDS})\n"
    return lua


@dataclass(frozen=True)
class Entry:
    """One entry of a job's stream: its id, and what changed."""

    id: bytes
    kind: str
    status: str | None = None
    epoch: int | None = None
    t: float | None = None  # unix time of the flush, on the worker's clock


def _entry(entry_id: bytes, fields: dict) -> Entry:
    values = {k.decode(): v.decode() for k, v in fields.items()}
    return Entry(
        id=entry_id,
        kind=values.get("kind", ""),
        status=values.get("status"),
        epoch=int(values["epoch"]) if "epoch" in values else None,
        t=float(values["t"]) if "t" in values else None,
    )


def read_entries(conn: redis.Redis, job_id: str, after: bytes, seconds: float) -> list[Entry]:
    """The entries after id ``after``, waiting up to ``seconds`` (at most MAX_BLOCK_SECONDS)
    for the first; an empty list when none came."""
    block_ms = max(1, int(min(seconds, MAX_BLOCK_SECONDS) * 1000))  # XREAD BLOCK 0 is forever
    reply = conn.xread({events_key(job_id): after}, count=MAXLEN, block=block_ms)
    return [_entry(i, f) for _, entries in reply or () for i, f in entries]


def history_columns(conn: redis.Redis, job_id: str) -> list[str]:
    """The names of the job's history columns, sorted; empty before its first flush."""
    return sorted(c.decode() for c in conn.smembers(history_columns_key(job_id)))


@dataclass(frozen=True)
class JobState:
    """What a follower shows, read in one transaction.

    Attributes:
        status: the job's status; None when there is no such job.
        progress, error, model_id: as in the job's record.
        rows: ``{column: values}`` of the history from the requested offset.
        last: ``{column: value}`` of the last stored epoch (empty before the first).
    """

    status: str | None
    progress: dict | None
    error: dict | None
    model_id: str | None
    rows: dict
    last: dict


def read_state(
    conn: redis.Redis,
    job_id: str,
    offset: int,
    limit: int,
    columns: list[str],
    with_cursor: bool = False,
) -> tuple[JobState, bytes | None]:
    """The job's state and up to ``limit`` (at least 1) history rows from ``offset``, in one
    transaction.

    Args:
        columns: the history columns (``history_columns``); rows are read for these.
        with_cursor: also return the stream's last id (``b"0"`` when it has none yet), read
            in the same transaction, to follow the stream from.
    """
    start, end = offset * ROW_BYTES, (offset + limit) * ROW_BYTES - 1
    pipe = conn.pipeline(transaction=True)
    pipe.hmget(job_key(job_id), _STATE_FIELDS)
    for column in columns:
        pipe.getrange(history_key(job_id, column), start, end)
    for column in columns:
        pipe.getrange(history_key(job_id, column), -ROW_BYTES, -1)
    if with_cursor:
        pipe.xrevrange(events_key(job_id), count=1)
    replies = pipe.execute()
    fields = [json_or_none(v) for v in replies[0]]
    n = len(columns)
    rows = {c: history_values(c, b) for c, b in zip(columns, replies[1 : 1 + n], strict=True)}
    ends = replies[1 + n : 1 + 2 * n]
    last = {c: history_values(c, b) for c, b in zip(columns, ends, strict=True)}
    cursor = None
    if with_cursor:
        cursor = replies[-1][0][0] if replies[-1] else b"0"
    return JobState(*fields, rows=rows, last={c: v[0] for c, v in last.items() if v}), cursor


def wait_for_status(
    conn: redis.Redis,
    job_id: str,
    statuses: Collection[str],
    seconds: float,
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    """Return once the job's status is one of ``statuses``, or after ``seconds``, or when
    ``stopping()`` says so, whichever comes first; blocked on the job's stream meanwhile."""
    deadline = time.monotonic() + seconds
    pipe = conn.pipeline(transaction=True)
    pipe.hget(job_key(job_id), "status")
    pipe.xrevrange(events_key(job_id), count=1)
    status, last = pipe.execute()
    if status is None or json.loads(status) in statuses:
        return
    cursor = last[0][0] if last else b"0"
    while (left := deadline - time.monotonic()) > 0 and not stopping():
        for entry in read_entries(conn, job_id, cursor, left):
            cursor = entry.id
            if entry.kind == STATUS and entry.status in statuses:
                return
