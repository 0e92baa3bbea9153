"""What workers and API processes agree on through Redis: leases on running jobs, worker
liveness, cancel flags, idempotency keys and per-tenant quota slots."""

import json
import time

import redis

from .connection import eval_script
from .jobs import FINAL_STATUSES, update_job
from .keys import (
    ACTIVE_JOBS,
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
    return bool(eval_script(conn, _RENEW, [lease_key(job_id)], owner, ttl_ms))


def release_lease(conn: redis.Redis, job_id: str, owner: str) -> None:
    eval_script(conn, _RELEASE, [lease_key(job_id)], owner)


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
    value = json.dumps({"hash": body_hash, "job_id": job_id})
    if conn.set(name, value, nx=True, ex=IDEMPOTENCY_PENDING_SECONDS):
        return None
    raw = conn.get(name)
    return None if raw is None else json.loads(raw)


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
