"""Search over jobs: indexes kept as jobs change, and a walk that pages through them at a Redis
cost bounded by the page size, not by the number of jobs.

Indexes, each kept twice: for the job's tenant and for every tenant (admins, ``tenant=None``):

- created: ``keys.tenant_jobs_key`` and ``keys.JOBS_INDEX`` (``store.jobs`` writes them),
  scored by the creation time (Unix seconds; ``created_at`` shows it to the millisecond);
- ``status:<s>``, ``tag:<t>``, ``dataset:<id>``, ``sweep:<id>``: sorted sets scored by the
  creation time too. The status sets follow every status change in the same script or
  transaction as the change (``lua_index_status``, ``index_status``);
- ``name``: a lex index, members ``<name>\\0<id>`` at score 0;
- ``metric:<m>``: finished jobs scored by their model's ``final_loss`` or final metric ``m``,
  written when the job finishes.

Complexity of one page of ``limit`` jobs, N the jobs in the scope (the tenant's, or all):

- no filter, by created time: O(log N + limit), as before;
- one of status, tag, dataset_id, sweep_id, and/or created_after/created_before: the walk
  runs over that index only, O(log N + limit);
- several of them: one ZCOUNT each (O(log N)) to find the smallest, then the walk runs over it
  and checks the others on each job's record. A page examines at most ``SCAN_CHUNKS *
  (limit + 1)`` jobs: O(k log N + SCAN_CHUNKS * limit). When the other filters match few of
  the walked jobs, a page may hold fewer than ``limit`` jobs (even none) with a
  ``next_cursor``: follow it to the end. The total work to list all matches is bounded by the
  smallest index's size, not by N;
- a name prefix: ZLEXCOUNT, O(log N). When it matches at most ``NAME_CANDIDATES_MAX`` jobs and
  is the smallest filter, those are read at once (O(log N + M), M <= NAME_CANDIDATES_MAX) and
  sorted by created time; otherwise it is checked per job like the others;
- ``sort=<metric>`` (``final_loss``, ``-val_accuracy``): the walk runs over the metric index
  (finished jobs with that metric only) and every filter is checked per job: O(log N +
  SCAN_CHUNKS * limit) a page, with the same partial pages when filters are selective.

A cursor is the id of the last job the page examined; the next page starts after its score in
the walked order (ties broken by id), so pages stay stable as new jobs arrive.

Jobs stored before these indexes existed (or before ``INDEX_FORMAT`` last changed) are
indexed by ``reindex``, which ``store.migrations`` runs over every job once per format.
"""

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import redis

from .codecs import json_or_none, record_from_hash
from .keys import (
    JOBS_INDEX,
    PUBLIC_TENANT,
    job_key,
    model_meta_key,
    search_key,
    tenant_jobs_key,
)

# The layout of the indexes below. Raise it whenever what a job's entries are changes: every
# worker's start then re-indexes the stored jobs once (``store.migrations``).
INDEX_FORMAT = 1
SCAN_CHUNKS = 5  # a page examines at most this many chunks of limit + 1 jobs
NAME_CANDIDATES_MAX = 1000  # a name prefix matching at most this many jobs is walked itself
CREATED = "created_at"
FINAL_LOSS = "final_loss"


def _scopes(tenant: str) -> tuple[str | None, str]:
    return (tenant, None)


def _references(record: dict) -> list[tuple[str, str]]:
    """The dataset and sweep indexes a job is in: ``[(index, value)]``."""
    pairs = (("dataset", record.get("dataset_id")), ("sweep", record.get("sweep_id")))
    return [(index, value) for index, value in pairs if value]


def _name_member(name: str, job_id: str) -> str:
    return f"{name}\0{job_id}"


# -- writing the indexes ------------------------------------------------------------------


def index_new(pipe, record: dict, score: float) -> None:
    """Queue on ``pipe`` a new job's entries: status, tags, dataset, sweep and name."""
    job_id = record["id"]
    for scope in _scopes(record["tenant"]):
        pipe.zadd(search_key(scope, "status", str(record["status"])), {job_id: score})
        _index_labels(pipe, scope, job_id, record.get("name"), record.get("tags"), score)
        for index, value in _references(record):
            pipe.zadd(search_key(scope, index, value), {job_id: score})


def _index_labels(pipe, scope, job_id: str, name, tags, score: float) -> None:
    for tag in tags or []:
        pipe.zadd(search_key(scope, "tag", tag), {job_id: score})
    if name:
        pipe.zadd(search_key(scope, "name"), {_name_member(name, job_id): 0})


def _unindex_labels(pipe, scope, job_id: str, name, tags) -> None:
    for tag in tags or []:
        pipe.zrem(search_key(scope, "tag", tag), job_id)
    if name:
        pipe.zrem(search_key(scope, "name"), _name_member(name, job_id))


def unindex(pipe, record: dict, statuses: Iterable[str]) -> None:
    """Queue on ``pipe`` the removal of a job that is being discarded from every index."""
    job_id = record["id"]
    for scope in _scopes(record["tenant"]):
        for status in statuses:
            pipe.zrem(search_key(scope, "status", str(status)), job_id)
        _unindex_labels(pipe, scope, job_id, record.get("name"), record.get("tags"))
        for index, value in _references(record):
            pipe.zrem(search_key(scope, index, value), job_id)


def status_keys(tenant: str, status: str, statuses: Iterable[str]) -> list[str]:
    """The KEYS of ``lua_index_status``: the tenant's created index, the two status sets the
    job joins, then the ones it leaves."""
    keys = [tenant_jobs_key(tenant)]
    keys += [search_key(scope, "status", str(status)) for scope in _scopes(tenant)]
    for other in statuses:
        if other != status:
            keys += [search_key(scope, "status", str(other)) for scope in _scopes(tenant)]
    return keys


def status_key_count(statuses: Iterable[str]) -> int:
    """How many keys ``status_keys`` gives."""
    return 1 + 2 * len(tuple(statuses))


def lua_index_status(first: int, n_keys: int, job_id: str) -> str:
    """Lua that moves a job to its new status sets, for the scripts that change a status.

    Args:
        first: where ``status_keys``'s keys start in KEYS; n_keys: how many there are.
        job_id: the Lua expression of the job's id, e.g. ``ARGV[5]``.
    """
    return (
        "do\n"
        f"  local score = redis.call('ZSCORE', KEYS[{first}], {job_id})\n"
        "  if score then\n"
        f"    redis.call('ZADD', KEYS[{first + 1}], score, {job_id})\n"
        f"    redis.call('ZADD', KEYS[{first + 2}], score, {job_id})\n"
        f"    for i = {first + 3}, {first + n_keys - 1} do\n"
        f"      redis.call('ZREM', KEYS[i], {job_id})\n"
        "    end\n"
        "  end\n"
        "end\n"
    )


def index_status(pipe, tenant: str, job_id: str, status: str, statuses: Iterable[str]) -> None:
    """Queue on ``pipe`` (a MULTI, as a status change's) the job's move to ``status``'s sets."""
    keys = status_keys(tenant, status, statuses)
    pipe.eval(lua_index_status(1, len(keys), "ARGV[1]"), len(keys), *keys, job_id)


def metric_values(meta: dict) -> dict[str, float]:
    """What a finished job's model is sorted by: ``final_loss`` and each final metric."""
    values = {FINAL_LOSS: meta.get("final_loss"), **(meta.get("final_metrics") or {})}
    return {
        name: float(value)
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


def index_metrics(pipe, tenant: str, job_id: str, meta: dict) -> None:
    """Queue on ``pipe`` a finished job's entries in the metric indexes."""
    for name, value in metric_values(meta).items():
        for scope in _scopes(tenant):
            pipe.zadd(search_key(scope, "metric", name), {job_id: value})


def relabel(conn: redis.Redis, job_id: str, changes: dict) -> bool:
    """Set a job's ``name``, ``tags`` and/or ``metadata`` (the keys of ``changes``; None
    clears) and move it in the name and tag indexes, atomically. False when there is no job.
    """
    key = job_key(job_id)
    with conn.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                fields = pipe.hmget(key, "status", "tenant", "name", "tags")
                status, tenant, name, tags = map(json_or_none, fields)
                if status is None:
                    return False
                tenant = tenant or PUBLIC_TENANT  # a job stored before tenants were
                score = pipe.zscore(tenant_jobs_key(tenant), job_id)
                new_name = changes["name"] if "name" in changes else name
                new_tags = changes["tags"] if "tags" in changes else tags
                pipe.multi()
                for scope in _scopes(tenant):
                    _unindex_labels(pipe, scope, job_id, name, tags)
                    if score is not None:
                        _index_labels(pipe, scope, job_id, new_name, new_tags, score)
                pipe.hset(key, mapping={k: json.dumps(v) for k, v in changes.items()})
                pipe.execute()
                return True
            except redis.WatchError:
                continue


# -- indexing stored jobs (the backfill) ---------------------------------------------------

# The record's fields a job's entries come from: they are compared again, in the script that
# writes the entries, so a job changed or deleted since it was read is not indexed from a
# stale copy (its entries are then planned again from a fresh read).
_INDEXED_FIELDS = ("tenant", "status", "name", "tags", "dataset_id", "sweep_id", "model_id")
# KEYS[1]: the job; KEYS[k > 1]: the sorted set of write k - 1. ARGV[1]: the fields' values as
# read ('' for none), ARGV[2]: per write an op (add, addnx, rem), a score and a member; both
# JSON, one argument each (packing a few dozen arguments per job was most of the time).
_REINDEX = (
    "local fields = {"
    + ", ".join(f"'{field}'" for field in _INDEXED_FIELDS)
    + """}
local seen = cjson.decode(ARGV[1])
local now = redis.call('HMGET', KEYS[1], unpack(fields))
for i = 1, #fields do
  if (now[i] or '') ~= seen[i] then return 0 end
end
local writes = cjson.decode(ARGV[2])
for k = 2, #KEYS do
  local op, score, member = unpack(writes[k - 1])
  if op == 'rem' then
    redis.call('ZREM', KEYS[k], member)
  elseif op == 'addnx' then
    redis.call('ZADD', KEYS[k], 'NX', score, member)
  else
    redis.call('ZADD', KEYS[k], score, member)
  end
end
return 1
"""
)


class _Writes:
    """Stands in for a pipeline: collects the index writes that ``index_new`` and
    ``index_metrics`` queue, as the KEYS and the writes of ``_REINDEX``."""

    def __init__(self):
        self.keys: list[str] = []
        self.ops: list[tuple[str, str, str]] = []

    def zadd(self, key: str, mapping: dict, nx: bool = False) -> None:
        for member, score in mapping.items():
            self.keys.append(key)
            self.ops.append(("addnx" if nx else "add", repr(float(score)), member))

    def zrem(self, key: str, *members: str) -> None:
        for member in members:
            self.keys.append(key)
            self.ops.append(("rem", "0", member))


@dataclass(frozen=True)
class Reindex:
    """One job's index entries as its record was read, for ``_REINDEX``."""

    entry: tuple[str, float]  # (job id, its score in the created index)
    keys: list[str]
    args: list


def reindex(
    conn: redis.Redis, entries: list[tuple[str, float]], statuses: Iterable[str]
) -> tuple[int, list[tuple[str, float]]]:
    """Give stored jobs every index entry a job of theirs has (``plan_reindex``, then
    ``apply_reindex``): four round trips for any number of jobs. Idempotent.

    Args:
        entries: ``(job id, score)`` from the created index of every tenant (``JOBS_INDEX``).
        statuses: every job status (``JobStatus``): a job leaves the sets of the others.

    Returns:
        How many jobs were indexed, and the entries of those changed since they were read,
        to be passed again. A job no longer stored is neither.
    """
    return apply_reindex(conn, plan_reindex(conn, entries, statuses))


def plan_reindex(
    conn: redis.Redis, entries: list[tuple[str, float]], statuses: Iterable[str]
) -> list[Reindex]:
    """Read the jobs' records, then their models' metrics (two round trips), and plan each
    stored job's entries; a job not stored (deleted meanwhile) has none."""
    entries = [(_text(job_id), score) for job_id, score in entries]
    pipe = conn.pipeline(transaction=False)
    for job_id, _score in entries:
        pipe.hmget(job_key(job_id), _INDEXED_FIELDS)
    raws = [dict(zip(_INDEXED_FIELDS, values, strict=True)) for values in pipe.execute()]
    stored = [(e, raw) for e, raw in zip(entries, raws, strict=True) if raw["status"] is not None]
    records = [(e, raw, {k: json_or_none(v) for k, v in raw.items()}) for e, raw in stored]
    models = [r["model_id"] for _e, _raw, r in records if r["status"] == "finished"]
    models = [model_id for model_id in models if model_id]
    metas = {}
    if models:
        metas = dict(zip(models, conn.mget([model_meta_key(m) for m in models]), strict=True))
    plans = []
    for (job_id, score), raw, record in records:
        writes = _writes(record | {"id": job_id}, score, statuses, metas.get(record["model_id"]))
        seen = ["" if raw[f] is None else raw[f].decode() for f in _INDEXED_FIELDS]
        args = [json.dumps(seen), json.dumps(writes.ops)]
        plans.append(Reindex((job_id, score), [job_key(job_id), *writes.keys], args))
    return plans


def apply_reindex(conn: redis.Redis, plans: list[Reindex]) -> tuple[int, list[tuple[str, float]]]:
    """Write the planned entries of each job whose record is still as read, one script per job
    in one round trip (after redis-py's SCRIPT EXISTS): ``(jobs indexed, entries of the
    others)``."""
    if not plans:
        return 0, []
    script = conn.register_script(_REINDEX)
    pipe = conn.pipeline(transaction=False)
    for plan in plans:
        script(plan.keys, plan.args, client=pipe)
    done = pipe.execute()
    changed = [plan.entry for plan, ok in zip(plans, done, strict=True) if not ok]
    return len(plans) - len(changed), changed


def _writes(record: dict, score: float, statuses: Iterable[str], meta: bytes | None) -> _Writes:
    """Every entry of one job, as its status changes and ``create_job`` would have made them."""
    record["tenant"] = record["tenant"] or PUBLIC_TENANT
    job_id, tenant, status = record["id"], record["tenant"], record["status"]
    writes = _Writes()
    writes.zadd(tenant_jobs_key(tenant), {job_id: score}, nx=True)
    index_new(writes, record, score)
    for other in statuses:
        if other != status:
            for scope in _scopes(tenant):
                writes.zrem(search_key(scope, "status", str(other)), job_id)
    if meta is not None:
        index_metrics(writes, tenant, job_id, json.loads(meta))
    return writes


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """What ``search`` looks for. Every filter given must hold (tags: all of them).

    Attributes:
        name: a prefix of the job's name. created_after / created_before: Unix times,
            exclusive. sort: ``created_at``, ``final_loss`` or a final metric, descending with
            a leading ``-``.
    """

    status: str | None = None
    tags: tuple[str, ...] = ()
    name: str | None = None
    dataset_id: str | None = None
    sweep_id: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    sort: str = f"-{CREATED}"

    @property
    def sort_field(self) -> str:
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    def matches(self, record: dict, created: float | None) -> bool:
        """Whether a job passes every filter: its record decides, not an index.

        Args:
            created: its score in the created index (None: it has none, being discarded).
        """
        if self.status is not None and record.get("status") != self.status:
            return False
        if self.tags and not set(self.tags) <= set(record.get("tags") or ()):
            return False
        if self.name is not None and not (record.get("name") or "").startswith(self.name):
            return False
        for field in ("dataset_id", "sweep_id"):
            wanted = getattr(self, field)
            if wanted is not None and record.get(field) != wanted:
                return False
        if created is None:
            return False
        if self.created_after is not None and not created > self.created_after:
            return False
        if self.created_before is not None and not created < self.created_before:
            return False
        return True


def search(
    conn: redis.Redis, tenant: str | None, query: Query, limit: int, cursor: str | None = None
) -> tuple[list[dict], str | None]:
    """Jobs matching ``query`` in its order: ``(records, next_cursor)``; see the module's
    docstring for the cost of a page.

    Args:
        tenant: only this tenant's jobs; None searches every tenant's.
        cursor: the ``next_cursor`` of the previous page.

    Raises:
        KeyError: the cursor names no job in the walked index.
    """
    created_key = JOBS_INDEX if tenant is None else tenant_jobs_key(tenant)
    chunk = limit + 1
    if query.sort_field == CREATED:
        lo, hi = _bound(query.created_after, "-inf"), _bound(query.created_before, "+inf")
        position_key = created_key
        walk_key, candidates = _choose(conn, tenant, query, created_key, lo, hi)
    else:
        lo, hi = "-inf", "+inf"
        position_key = walk_key = search_key(tenant, "metric", query.sort_field)
        candidates = None
    after = None
    if cursor is not None:
        score = conn.zscore(position_key, cursor)
        if score is None:
            raise KeyError(cursor)
        after = (score, cursor)
    if candidates is not None:
        walk = _walk_list(conn, created_key, candidates, query.descending, after)
    else:
        walk = _walk(conn, walk_key, lo, hi, query.descending, after, chunk)
    return _page(conn, walk, query, limit, created_key)


def _bound(seconds: float | None, default: str) -> str:
    return default if seconds is None else f"({seconds!r}"


def _choose(conn, tenant, query: Query, created_key: str, lo: str, hi: str):
    """The smallest index to walk among the filters': ``(key, None)``, or ``(None, ids)`` when
    a name prefix's few matches are walked themselves."""
    keys = [created_key]
    if query.status is not None:
        keys.append(search_key(tenant, "status", query.status))
    keys += [search_key(tenant, "tag", tag) for tag in query.tags]
    if query.dataset_id is not None:
        keys.append(search_key(tenant, "dataset", query.dataset_id))
    if query.sweep_id is not None:
        keys.append(search_key(tenant, "sweep", query.sweep_id))
    pipe = conn.pipeline(transaction=False)
    for key in keys:
        pipe.zcount(key, lo, hi)
    if query.name is not None:
        pipe.zlexcount(search_key(tenant, "name"), *_prefix_range(query.name))
    counts = pipe.execute()
    smallest = min(range(len(keys)), key=lambda i: counts[i])
    if query.name is not None and counts[-1] <= min(NAME_CANDIDATES_MAX, counts[smallest]):
        members = conn.zrangebylex(search_key(tenant, "name"), *_prefix_range(query.name))
        return None, [m.rsplit(b"\0", 1)[1].decode() for m in members]
    return keys[smallest], None


def _prefix_range(prefix: str) -> tuple[bytes, bytes]:
    encoded = prefix.encode()
    return b"[" + encoded, b"[" + encoded + b"\xff"


def _walk(conn, key: str, lo: str, hi: str, desc: bool, after, chunk: int) -> Iterator:
    """``(id, score)`` of a sorted set's members within [lo, hi], in order, after ``after``
    ``(score, id)``; fetched ``chunk`` at a time (ties at a chunk's edge: one more command)."""
    while True:
        if after is not None:
            score, last = after
            ties = sorted(m.decode() for m in conn.zrangebyscore(key, score, score))
            if desc:
                rest = [m for m in reversed(ties) if m < last]
            else:
                rest = [m for m in ties if m > last]
            yield from ((m, score) for m in rest)
            if desc:
                hi = f"({score!r}"
            else:
                lo = f"({score!r}"
        if desc:
            entries = conn.zrevrangebyscore(key, hi, lo, start=0, num=chunk, withscores=True)
        else:
            entries = conn.zrangebyscore(key, lo, hi, start=0, num=chunk, withscores=True)
        for member, score in entries:
            yield member.decode(), score
        if len(entries) < chunk:
            return
        after = (entries[-1][1], entries[-1][0].decode())


def _walk_list(conn, created_key: str, ids: list[str], desc: bool, after) -> Iterator:
    """The ids of a name prefix's matches in created order, after ``after``."""
    if not ids:
        return
    scores = conn.zmscore(created_key, ids)
    entries = sorted(
        ((s, i) for s, i in zip(scores, ids, strict=True) if s is not None), reverse=desc
    )
    for score, job_id in entries:
        if after is not None and ((score, job_id) >= after if desc else (score, job_id) <= after):
            continue
        yield job_id, score


def _page(
    conn, walk: Iterator, query: Query, limit: int, created_key: str
) -> tuple[list[dict], str | None]:
    """Read and check the walked jobs a chunk at a time until a page is full or its budget of
    ``SCAN_CHUNKS`` chunks is spent."""
    matches: list[dict] = []
    last = None
    for _ in range(SCAN_CHUNKS):
        batch = [job_id for job_id, _score in islice(walk, limit + 1)]
        raws, created = [], []
        if batch:
            pipe = conn.pipeline(transaction=False)
            for job_id in batch:
                pipe.hgetall(job_key(job_id))
            pipe.zmscore(created_key, batch)
            *raws, created = pipe.execute()
        for job_id, raw, score in zip(batch, raws, created, strict=True):
            last = job_id
            record = record_from_hash(raw)
            if record and query.matches(record, score):
                matches.append(record)
                if len(matches) > limit:
                    page = matches[:limit]
                    return page, page[-1]["id"]
        if len(batch) < limit + 1:
            return matches, None
    return matches, last
