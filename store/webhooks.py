"""Webhooks: the callbacks a job asks for, each tenant's signing secret, and the deliveries
(one per callback and event, each with its attempts) that the webhook worker sends.

A delivery's body is the job as GET /v1/jobs/{id} shows it at the moment of the event, with the
delivery's id and event: ``{"delivery_id", "event", "job"}``. It is written once, when the event
happens, so every attempt sends the same bytes. A delivery id is derived from the job, the event
and the callback's place in the job's list, so recording an event twice (a final write that is
retried, a second attempt that starts the job again) queues nothing twice.
"""

import enum
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
from typing import NamedTuple, TypedDict
from urllib.parse import urlsplit

import redis

from . import queue
from .codecs import finite, now_iso, record_from_hash
from .jobs import JobStatus, get_job, job_view
from .keys import (
    PUBLIC_TENANT,
    delivery_attempts_key,
    delivery_key,
    job_deliveries_key,
    webhook_secret_key,
)

# The events a callback may ask for: every status but queued.
EVENTS = tuple(s.value for s in JobStatus if s is not JobStatus.QUEUED)
MAX_CALLBACKS = 5  # per job
MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # queued, or waiting for its next attempt
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # every attempt failed; no more are made


class Attempt(TypedDict):
    """One POST of a delivery: the answer's status code, or the error that prevented one."""

    attempt: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: float


class Delivery(TypedDict, total=False):
    """A delivery's hash (``keys.delivery_key``), one JSON value per field."""

    id: str
    job_id: str
    tenant: str
    event: str
    url: str
    status: DeliveryStatus
    created_at: str
    ended_at: str | None
    attempts: int
    body: str  # the exact JSON text every attempt sends


# -- the tenant's secret -------------------------------------------------------------------


def rotate_secret(conn: redis.Redis, tenant: str) -> dict:
    """Make a new signing secret for ``tenant``, replacing any old one at once.

    Returns:
        ``{"secret", "created_at"}``: the only time the secret is handed out. It is kept as it
        is, not hashed, because signing needs it.
    """
    record = {"secret": SECRET_PREFIX + secrets.token_urlsafe(32), "created_at": now_iso()}
    conn.hset(webhook_secret_key(tenant), mapping=record)
    return record


def secret_created_at(conn: redis.Redis, tenant: str) -> str | None:
    """When the tenant's secret was made; None when it has none."""
    value = conn.hget(webhook_secret_key(tenant), "created_at")
    return None if value is None else value.decode()


def current_secret(conn: redis.Redis, tenant: str) -> str | None:
    value = conn.hget(webhook_secret_key(tenant), "secret")
    return None if value is None else value.decode()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex>``: HMAC-SHA256 under ``secret`` of ``f"{t}.{body}"``, as Stripe signs."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# -- where a callback may point ------------------------------------------------------------


class Target(NamedTuple):
    """Where a callback URL sends its POST: ``path`` is the request target (path and query)."""

    https: bool
    host: str
    port: int
    path: str


def target(url: str) -> Target:
    """Split a callback URL (http or https, as the API's schema checks it).

    Raises:
        ValueError: it names no host, or a port outside 1 to 65535.
    """
    parts = urlsplit(url)
    https = parts.scheme.lower() == "https"
    if not parts.hostname:
        raise ValueError("The URL names no host.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 0 < port < 65536:
        raise ValueError("The port must be a number from 1 to 65535.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(https, parts.hostname, port or (443 if https else 80), path)


class RefusedAddress(ValueError):
    """A callback's host does not resolve, or resolves to an address webhooks may not call."""


def public_address(host: str, port: int, allow_private: bool) -> str:
    """Resolve ``host`` and return an address to connect to.

    Every address the name resolves to must be public (not loopback, link-local, private,
    reserved or multicast) unless ``allow_private``: a name with one private address among
    public ones could be answered with either.

    Raises:
        RefusedAddress: naming the host and the address at fault.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedAddress(f"{host!r} does not resolve ({exc}).") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for address in addresses:
            kind = _non_public(address)
            if kind is not None:
                shown = "" if address == host else f" resolves to {address}, which"
                raise RefusedAddress(f"{host!r}{shown} is a {kind} address.")
    return addresses[0]


def _non_public(address: str) -> str | None:
    """What kind of address webhooks may not call ``address`` is, or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # no IPv6 zone
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-global"


# -- deliveries ----------------------------------------------------------------------------


def delivery_id(job_id: str, event: str, index: int) -> str:
    """The id of the delivery of ``event`` to the job's ``index``-th callback: 32 hex digits."""
    return hashlib.sha256(f"{job_id}:{event}:{index}".encode()).hexdigest()[:32]


def job_event(conn: redis.Redis, job_id: str, event: str) -> list[str]:
    """Record the deliveries of ``event`` that the job's callbacks ask for and queue them, all
    in one transaction; recording the same event again queues nothing.

    Returns:
        The ids of the deliveries queued now.
    """
    record = get_job(conn, job_id) or {}  # gone meanwhile: nothing to deliver
    wanted = [
        (i, callback)
        for i, callback in enumerate(record.get("callbacks") or [])
        if event in callback["events"]
    ]
    if not wanted:
        return []
    view = finite(job_view(record))
    created = now_iso()
    deliveries: list[Delivery] = []
    for index, callback in wanted:
        did = delivery_id(job_id, event, index)
        body = json.dumps({"delivery_id": did, "event": event, "job": view}, allow_nan=False)
        deliveries.append(
            {
                "id": did,
                "job_id": job_id,
                "tenant": record.get("tenant", PUBLIC_TENANT),
                "event": event,
                "url": callback["url"],
                "status": DeliveryStatus.PENDING,
                "created_at": created,
                "ended_at": None,
                "attempts": 0,
                "body": body,
            }
        )
    keys = [delivery_key(d["id"]) for d in deliveries]
    with conn.pipeline() as pipe:
        try:
            pipe.watch(*keys)
            if pipe.exists(*keys):
                return []
            pipe.multi()
            for delivery in deliveries:
                pipe.hset(delivery_key(delivery["id"]), mapping=_encode(delivery))
                pipe.rpush(job_deliveries_key(job_id), delivery["id"])
                queue.enqueue_delivery(conn, delivery["id"], pipe)
            pipe.execute()
        except redis.WatchError:
            return []  # recorded meanwhile by another process
    return [d["id"] for d in deliveries]


def get_delivery(conn: redis.Redis, delivery_id: str) -> Delivery | None:
    raw = conn.hgetall(delivery_key(delivery_id))
    if not raw:
        return None
    return record_from_hash(raw)


def record_attempt(
    conn: redis.Redis, delivery_id: str, attempt: Attempt, status: DeliveryStatus
) -> None:
    """Append an attempt to the delivery and set its status (and end, once it has one)."""
    fields: dict = {"attempts": attempt["attempt"], "status": status}
    if status is not DeliveryStatus.PENDING:
        fields["ended_at"] = attempt["at"]
    pipe = conn.pipeline(transaction=True)
    pipe.rpush(delivery_attempts_key(delivery_id), json.dumps(attempt))
    pipe.hset(delivery_key(delivery_id), mapping=_encode(fields))
    pipe.execute()


def list_deliveries(conn: redis.Redis, job_id: str) -> list[dict]:
    """The job's deliveries, oldest first, each with its attempts (the body left out)."""
    ids = [i.decode() for i in conn.lrange(job_deliveries_key(job_id), 0, -1)]
    pipe = conn.pipeline(transaction=False)
    for did in ids:
        pipe.hgetall(delivery_key(did))
        pipe.lrange(delivery_attempts_key(did), 0, -1)
    replies = pipe.execute()
    views = []
    for raw, attempts in zip(replies[::2], replies[1::2], strict=True):
        if not raw:
            continue
        delivery = record_from_hash(raw)
        delivery.pop("body", None)
        delivery.pop("tenant", None)
        delivery["attempts"] = [json.loads(a) for a in attempts]
        views.append(delivery)
    return views


def _encode(fields: dict) -> dict:
    return {k: json.dumps(v) for k, v in fields.items()}
