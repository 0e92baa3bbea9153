"""One-off migrations of stored data, run once per Redis when a training worker starts.

A migration runs while its marker key (``store.keys``) holds less than its format version,
under a lock: of several processes starting at once, one runs it and the others go on without
waiting. The marker is written at the end, so a run cut short (the process killed, Redis gone)
is run again by the next start; every migration is idempotent.

- ``backfill_search``: jobs stored before the search indexes (``store.search``) existed, or
  before ``search.INDEX_FORMAT`` last changed, get their index entries, so that GET /v1/jobs
  filters and sorts them as it does newer jobs.
"""

import uuid
from collections.abc import Callable

import redis

from . import search
from .connection import eval_script
from .jobs import JobStatus
from .keys import JOBS_INDEX, SEARCH_INDEX_VERSION, migration_lock_key

BATCH = 1000  # jobs read and indexed per round trip
# A lock whose holder died frees itself this soon; the holder renews it after every batch.
LOCK_MS = 60_000

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class LockLost(Exception):
    """Another process took the lock over (this one stalled for longer than LOCK_MS)."""


def backfill_search(conn: redis.Redis, batch: int = BATCH) -> int | None:
    """Index every stored job that the search indexes lack, once per ``search.INDEX_FORMAT``.

    Walks the created index of every tenant (``JOBS_INDEX``, which every release has written
    with the job) with ZSCAN, ``batch`` jobs at a time: O(jobs) in all, a few round trips a
    batch, none per job. Jobs deleted meanwhile are skipped; jobs changed meanwhile are read
    again (``search.reindex``).

    Returns:
        How many jobs it indexed; None when the marker says it is done, or another process
        holds the lock (and is running it).
    """
    return run_once(
        conn, SEARCH_INDEX_VERSION, search.INDEX_FORMAT, lambda renew: _backfill(conn, batch, renew)
    )


def _backfill(conn: redis.Redis, batch: int, renew: Callable[[], None]) -> int:
    indexed, cursor = 0, 0
    while True:
        cursor, entries = conn.zscan(JOBS_INDEX, cursor, count=batch)
        while entries:
            done, entries = search.reindex(conn, entries, JobStatus)
            indexed += done
        renew()
        if cursor == 0:
            return indexed


def run_once(conn: redis.Redis, marker: str, version: int, migrate: Callable) -> int | None:
    """Run a migration once per ``version``, by one process at a time.

    Args:
        marker: its marker key; the lock is ``keys.migration_lock_key(marker)``.
        version: the format it brings the data to; it runs while the marker holds less.
        migrate: ``migrate(renew)`` does the work and returns what ``run_once`` returns; it
            calls ``renew()`` at least every ``LOCK_MS`` (which raises ``LockLost`` when
            another process has taken the lock over).

    Returns:
        What ``migrate`` returned, then the marker holds ``version``; None when the marker
        already did, or another process holds the lock.
    """
    if _done(conn, marker, version):
        return None
    lock, token = migration_lock_key(marker), uuid.uuid4().hex
    if not conn.set(lock, token, nx=True, px=LOCK_MS):
        return None
    try:
        # Another process may have finished between the first look and taking the lock.
        if _done(conn, marker, version):
            return None

        def renew() -> None:
            if not eval_script(conn, _RENEW, [lock], token, LOCK_MS):
                raise LockLost(lock)

        result = migrate(renew)
        conn.set(marker, version)
        return result
    finally:
        eval_script(conn, _RELEASE, [lock], token)


def _done(conn: redis.Redis, marker: str, version: int) -> bool:
    value = conn.get(marker)
    return value is not None and int(value) >= version
