"""Cursor paging over a sorted-set index of records kept as JSON-valued hashes."""

from collections.abc import Callable

import redis

from .codecs import record_from_hash


def newest_first(
    conn: redis.Redis,
    index: str,
    record_key: Callable[[str], str],
    limit: int,
    cursor: str | None = None,
) -> tuple[list[dict], str | None]:
    """A page of the records ``index`` holds, highest score (newest) first:
    ``(records, next_cursor)``; the cursor is the last id returned. Two round trips.

    Args:
        record_key: the key of an id's hash, each field a JSON value.

    Raises:
        KeyError: the cursor names no member of the index.
    """
    start = 0
    if cursor is not None:
        rank = conn.zrevrank(index, cursor)
        if rank is None:
            raise KeyError(cursor)
        start = rank + 1
    # One more than asked for tells whether there is a next page.
    ids = [i.decode() for i in conn.zrevrange(index, start, start + limit)]
    more = len(ids) > limit
    ids = ids[:limit]
    pipe = conn.pipeline(transaction=False)
    for member in ids:
        pipe.hgetall(record_key(member))
    records = [record_from_hash(raw) for raw in pipe.execute() if raw]
    return records, (ids[-1] if more and ids else None)
