"""What workers and API processes agree on through Redis: leases on running jobs, worker
liveness, cancel flags, idempotency keys and per-tenant quota slots."""

import json
import time
from collections.abc import Iterable

import redis

from .codecs import json_or_none
from .connection import eval_script
from .jobs import FINAL_STATUSES, JobStatus, update_job
from .keys import (
    ACTIVE_JOBS,
    CANCEL_REQUESTS,
    LEASE_DEADLINES,
    LEASE_DEADLINES_SEEDED,
    LIVE_WORKERS,
    cancel_key,
    idempotency_key,
    job_key,
    lease_key,
    tenant_active_key,
)

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# A key whose first request has not stored its job yet; a crashed request frees it this soon.
IDEMPOTENCY_PENDING_SECONDS = 60
CANCEL_FLAG_TTL_SECONDS = 7 * 24 * 3600


# -- leases: which worker runs a job, and whether it is still alive -------------------------

# Every lease also has its deadline in LEASE_DEADLINES (Redis's clock, ms), written in the same
# script, so the reaper reads only the leases that have run out instead of every active job.
_DEADLINE = """
local function deadline(ttl_ms)
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ttl_ms)
end
"""
_ACQUIRE = (
    _DEADLINE
    + """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], deadline(ARGV[2]), ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""
)
# Extend the lease if we hold it; take it if nobody does. 1 when we hold it afterwards.
_RENEW = (
    _DEADLINE
    + """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  return 0
end
redis.call('ZADD', KEYS[2], deadline(ARGV[2]), ARGV[3])
return 1
"""
)
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Never moves a deadline earlier: a live lease that runs out later keeps its own.
_EXPECT = (
    _DEADLINE
    + """
local at = deadline(ARGV[1])
local entries = {}
for i = 3, #ARGV do
  entries[#entries + 1] = at
  entries[#entries + 1] = ARGV[i]
end
return redis.call('ZADD', KEYS[1], ARGV[2], unpack(entries))
"""
)
_DUE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms, 'WITHSCORES', 'LIMIT', 0, ARGV[1])
"""
_DROP_IF_UNCHANGED = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""


def acquire_lease(conn: redis.Redis, job_id: str, owner: str, ttl_ms: int) -> bool:
    """Take the job for ``owner`` unless a live worker holds it; marks the job active.

    ``conn`` may be a pipeline; the answer then comes from its ``execute()``.
    """
    keys = [lease_key(job_id), LEASE_DEADLINES, ACTIVE_JOBS]
    return bool(eval_script(conn, _ACQUIRE, keys, owner, ttl_ms, job_id))


def renew_lease(conn: redis.Redis, job_id: str, owner: str, ttl_ms: int) -> bool:
    """Keep holding the job; False when another worker has taken it over."""
    keys = [lease_key(job_id), LEASE_DEADLINES]
    return bool(eval_script(conn, _RENEW, keys, owner, ttl_ms, job_id))


def release_lease(conn: redis.Redis, job_id: str, owner: str) -> None:
    eval_script(conn, _RELEASE, [lease_key(job_id), LEASE_DEADLINES], owner, job_id)


def expect_lease(conn: redis.Redis, job_id: str, ttl_ms: int, only_new: bool = False) -> None:
    """Give a job taken off the queue, which has no lease yet, a deadline all the same: if its
    worker dies before taking the lease, the reaper finds the job when it passes.

    Args:
        only_new: leave a deadline the job already has as it is (``ZADD NX``); otherwise only
            a later deadline replaces it (``GT``).
    """
    expect_leases(conn, [job_id], ttl_ms, only_new)


def expect_leases(
    conn: redis.Redis, job_ids: Iterable[str], ttl_ms: int, only_new: bool = False
) -> None:
    """``expect_lease`` for any number of jobs, in one round trip (none for no jobs)."""
    job_ids = list(job_ids)
    if job_ids:
        flag = "NX" if only_new else "GT"
        eval_script(conn, _EXPECT, [LEASE_DEADLINES], ttl_ms, flag, *job_ids)


def due_leases(conn: redis.Redis, limit: int) -> list[tuple[str, bytes]]:
    """Up to ``limit`` jobs whose lease deadline has passed (Redis's clock), earliest first,
    each with its deadline as stored (for ``drop_due_lease``)."""
    flat = eval_script(conn, _DUE, [LEASE_DEADLINES], limit)
    return [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]


def drop_due_lease(conn: redis.Redis, job_id: str, deadline: bytes | None = None) -> None:
    """Stop watching a job's deadline: at once, or only while it is still ``deadline`` (so a
    lease taken in the meantime keeps its own)."""
    if deadline is None:
        conn.zrem(LEASE_DEADLINES, job_id)
    else:
        eval_script(conn, _DROP_IF_UNCHANGED, [LEASE_DEADLINES], job_id, deadline)


# Leases taken before LEASE_DEADLINES existed have no deadline there, and a started job whose
# worker died before an upgrade would never be found. Once per Redis, every started job
# without one gets a deadline of now: the reaper then looks at each of them once.
_SEED_DEADLINES = (
    _DEADLINE
    + """
if not redis.call('SET', KEYS[3], 1, 'NX') then return -1 end
local now = deadline(0)
local seeded = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HGET', ARGV[1] .. id, 'status') == ARGV[2] then
    seeded = seeded + redis.call('ZADD', KEYS[2], 'NX', now, id)
  end
end
return seeded
"""
)


def seed_lease_deadlines(conn: redis.Redis) -> int:
    """Give every started job without a lease deadline one of now, the first time any worker
    calls this on this Redis; the number given, or -1 when it had been done."""
    keys = [ACTIVE_JOBS, LEASE_DEADLINES, LEASE_DEADLINES_SEEDED]
    started = json.dumps(JobStatus.STARTED)
    return int(eval_script(conn, _SEED_DEADLINES, keys, job_key(""), started))


def lease_holder(conn: redis.Redis, job_id: str) -> str | None:
    owner = conn.get(lease_key(job_id))
    return None if owner is None else owner.decode()


def claim_orphan(conn: redis.Redis, job_id: str, ttl_ms: int) -> bool:
    """True for exactly one caller when a started job has lost its worker."""
    return bool(conn.set(f"{lease_key(job_id)}:reaping", 1, nx=True, px=ttl_ms))


def deactivate(conn, job_id: str) -> None:
    conn.srem(ACTIVE_JOBS, job_id)


# -- worker liveness: which workers have beaten recently ----------------------------------

_BEAT = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) + tonumber(ARGV[2]), ARGV[1])
return 1
"""
_COUNT_LIVE = """
local now = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now[1])
return redis.call('ZCARD', KEYS[1])
"""


def worker_beat(conn: redis.Redis, identity: str, ttl_seconds: float) -> None:
    """Record that worker ``identity`` is alive for the next ``ttl_seconds`` (Redis's clock, so
    hosts whose clocks disagree still agree on who is alive)."""
    eval_script(conn, _BEAT, [LIVE_WORKERS], identity, ttl_seconds)


def worker_gone(conn: redis.Redis, identity: str) -> None:
    conn.zrem(LIVE_WORKERS, identity)


def live_workers(conn: redis.Redis) -> int:
    """Workers whose last beat has not expired; those that died without saying so drop out."""
    return int(eval_script(conn, _COUNT_LIVE, [LIVE_WORKERS]))


# -- cancellation ------------------------------------------------------------------------


def request_cancel(conn: redis.Redis, job_id: str) -> None:
    """Ask the worker running the job to stop it at its next epoch boundary."""
    asked = time.time()
    pipe = conn.pipeline(transaction=True)
    pipe.set(cancel_key(job_id), asked, nx=True, ex=CANCEL_FLAG_TTL_SECONDS)
    pipe.zadd(CANCEL_REQUESTS, {job_id: asked}, nx=True)
    update_job(pipe, job_id, cancel_requested=True)
    pipe.execute()


def cancels_older_than(conn: redis.Redis, seconds: float, limit: int) -> list[str]:
    """Up to ``limit`` jobs whose cancel was asked more than ``seconds`` ago and that the
    reaper still watches (``forget_cancel`` ends that)."""
    ids = conn.zrangebyscore(CANCEL_REQUESTS, "-inf", time.time() - seconds, start=0, num=limit)
    return [job_id.decode() for job_id in ids]


def forget_cancel(conn: redis.Redis, job_id: str) -> None:
    conn.zrem(CANCEL_REQUESTS, job_id)


# -- idempotency -------------------------------------------------------------------------


def remember_idempotent(conn: redis.Redis, scope: str, key: str, body_hash: str, job_id: str):
    """Bind ``key`` to a request body and job: for a minute until ``confirm_idempotent``, then
    for 24 h.

    Returns:
        None when the key is new (the caller creates ``job_id``), else the stored
        ``{"hash", "job_id"}`` of the first request.
    """
    name = idempotency_key(scope, key)
    value = json.dumps({"hash": body_hash, "job_id": job_id})
    if conn.set(name, value, nx=True, ex=IDEMPOTENCY_PENDING_SECONDS):
        return None
    raw = conn.get(name)
    return json_or_none(raw)


_FORGET_IDEMPOTENT = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['job_id'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def forget_idempotent(conn: redis.Redis, scope: str, key: str, job_id: str) -> None:
    """Free ``key`` after its request was refused or failed before storing ``job_id``, so a
    retry is handled afresh; a key bound to another job is left alone."""
    eval_script(conn, _FORGET_IDEMPOTENT, [idempotency_key(scope, key)], job_id)


def confirm_idempotent(conn: redis.Redis, scope: str, key: str) -> None:
    """The job of ``key`` is stored: keep the key for 24 h."""
    conn.expire(idempotency_key(scope, key), IDEMPOTENCY_TTL_SECONDS)


# -- quotas ------------------------------------------------------------------------------

# A reservation is marked for RESERVATION_SECONDS, the most a request may take to store its
# job. At the cap, a slot whose job is final, or was never stored and whose mark has expired
# (the request died, or Redis stalled past it), is freed before the count is taken again:
# leaked slots cannot lock a tenant out.
RESERVATION_SECONDS = 120
_RESERVE = """
local function reclaim()
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local job = ARGV[3] .. id
    local status = redis.call('HGET', job, 'status')
    if status then
      for i = 5, #ARGV do
        if status == ARGV[i] then redis.call('SREM', KEYS[1], id) end
      end
    elseif redis.call('EXISTS', job .. ':reserved') == 0 then
      redis.call('SREM', KEYS[1], id)
    end
  end
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then reclaim() end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SET', ARGV[3] .. ARGV[1] .. ':reserved', 1, 'EX', ARGV[4])
return 1
"""


def reserve_job_slot(conn: redis.Redis, tenant: str, job_id: str, cap: int) -> bool:
    """Count ``job_id`` against the tenant's cap of queued plus started jobs, if there is room.

    Slots leaked by requests that died between this and ``create_job`` are reclaimed here.
    """
    finals = [json.dumps(status) for status in sorted(FINAL_STATUSES)]
    key = tenant_active_key(tenant)
    args = (job_id, cap, job_key(""), RESERVATION_SECONDS, *finals)
    return bool(eval_script(conn, _RESERVE, [key], *args))
