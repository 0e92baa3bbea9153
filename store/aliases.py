"""Model aliases: per tenant, a name that points at one model id, with a capped history of
its moves.

An alias and the reverse index of the aliases pointing at a model (``keys.model_aliases_key``)
change in one transaction that watches the target model's description, and a guarded model
delete watches that index: an alias never points at a deleted model, and a model that an
alias points at is never deleted. Readers resolve an alias with one ``HGET``.
"""

import json
from typing import TypedDict

import redis

from .codecs import now_iso
from .keys import alias_history_key, model_aliases_key, model_meta_key, tenant_aliases_key
from .models import queue_delete

MAX_ALIASES = 1000  # per tenant
HISTORY_LENGTH = 50  # moves kept per alias, newest first

# "from" is a keyword, hence the functional form.
Move = TypedDict(
    "Move",
    {"by": str, "key": str | None, "from": str | None, "to": str | None, "at": str},
)
Move.__doc__ = """One move of an alias: who made it (tenant, and a short digest of the API key
used, None without keys), the model ids before and after (None: created or deleted), when."""


class AliasLimitReached(Exception):
    """The tenant has ``MAX_ALIASES`` aliases already."""


class UnknownModel(Exception):
    """The model to point at does not exist (or was deleted meanwhile)."""


def resolve(conn: redis.Redis, tenant: str, name: str) -> str | None:
    """The model id the tenant's alias ``name`` points at, or None."""
    model_id = conn.hget(tenant_aliases_key(tenant), name)
    return None if model_id is None else model_id.decode()


def point(
    conn: redis.Redis, tenant: str, name: str, model_id: str, by: str, key: str | None = None
) -> str | None:
    """Point the tenant's alias ``name`` at ``model_id``, creating it if needed, atomically.

    Returns:
        The model id it pointed at before (None: it is new).

    Raises:
        UnknownModel: there is no model ``model_id``.
        AliasLimitReached: a new alias past ``MAX_ALIASES``.
    """
    aliases, member = tenant_aliases_key(tenant), _member(tenant, name)
    history = alias_history_key(tenant, name)

    def move(pipe) -> str | None:
        raw = pipe.hget(aliases, name)
        previous = None if raw is None else raw.decode()
        if not pipe.exists(model_meta_key(model_id)):
            raise UnknownModel(model_id)
        if previous is None and pipe.hlen(aliases) >= MAX_ALIASES:
            raise AliasLimitReached(f"at most {MAX_ALIASES} aliases")
        if previous == model_id:
            return previous  # nothing moves, nothing to record
        record: Move = {"by": by, "key": key, "from": previous, "to": model_id, "at": now_iso()}
        pipe.multi()
        pipe.hset(aliases, name, model_id)
        if previous is not None:
            pipe.srem(model_aliases_key(previous), member)
        pipe.sadd(model_aliases_key(model_id), member)
        pipe.lpush(history, json.dumps(record))
        pipe.ltrim(history, 0, HISTORY_LENGTH - 1)
        return previous

    # Watching the model's description: a delete of it between the check and EXEC retries.
    return conn.transaction(move, aliases, model_meta_key(model_id), value_from_callable=True)


def remove(conn: redis.Redis, tenant: str, name: str) -> bool:
    """Delete the tenant's alias ``name`` and its history; True when there was one."""
    aliases = tenant_aliases_key(tenant)

    def drop(pipe) -> bool:
        raw = pipe.hget(aliases, name)
        if raw is None:
            return False
        pipe.multi()
        pipe.hdel(aliases, name)
        pipe.srem(model_aliases_key(raw.decode()), _member(tenant, name))
        pipe.delete(alias_history_key(tenant, name))
        return True

    return conn.transaction(drop, aliases, value_from_callable=True)


def describe(conn: redis.Redis, tenant: str, name: str) -> dict | None:
    """``{name, model_id, history: [Move, ...] newest first}``, or None without the alias."""
    pipe = conn.pipeline(transaction=True)
    pipe.hget(tenant_aliases_key(tenant), name)
    pipe.lrange(alias_history_key(tenant, name), 0, HISTORY_LENGTH - 1)
    model_id, moves = pipe.execute()
    if model_id is None:
        return None
    return {
        "name": name,
        "model_id": model_id.decode(),
        "history": [json.loads(move) for move in moves],
    }


def list_aliases(conn: redis.Redis, tenant: str) -> dict[str, str]:
    """The tenant's aliases, ``{name: model id}`` sorted by name (at most ``MAX_ALIASES``)."""
    raw = conn.hgetall(tenant_aliases_key(tenant))
    return {name.decode(): raw[name].decode() for name in sorted(raw)}


def delete_model_unless_aliased(conn: redis.Redis, model_id: str) -> list[tuple[str, str]]:
    """Delete the model unless an alias points at it, atomically.

    Returns:
        The ``(tenant, name)`` of the aliases pointing at it, sorted: nothing was deleted; or
        ``[]``: it is deleted (if it existed).
    """
    index = model_aliases_key(model_id)

    def delete(pipe) -> list[tuple[str, str]]:
        members = pipe.smembers(index)
        if members:
            return sorted(tuple(json.loads(member)) for member in members)
        pipe.multi()
        queue_delete(pipe, model_id)
        return []

    # Watching the index: an alias pointed at the model between the check and EXEC retries.
    return conn.transaction(delete, index, value_from_callable=True)


def _member(tenant: str, name: str) -> str:
    return json.dumps([tenant, name])
