"""The Redis client both sides use."""

import redis

from .config import SharedConfig
from .replication import NoReplicasError, refused_for_replicas


def connect(url: str | None = None, max_connections: int | None = None) -> redis.Redis:
    """A client for ``url`` (default: REDIS_URL, see ``store.config``).

    Args:
        max_connections: the most connections its pool opens (redis-py's default: 100); a
            thread that needs one more gets ``redis.exceptions.MaxConnectionsError``.
    """
    url = url or SharedConfig.from_env().redis_url
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=10,
        max_connections=max_connections,
    )


# Redis 6 reports a write refused at maxmemory inside a Lua script as a plain script error
# ("ERR Error running script ... -OOM command not allowed ..."), not as an OOM error.
_OOM_MESSAGE = "command not allowed when used memory > 'maxmemory'"


def eval_script(conn: redis.Redis, script: str, keys: list, *args):
    """EVAL ``script``; a write it could not make because Redis is full raises
    ``redis.exceptions.OutOfMemoryError``, and one refused for want of replicas
    ``NoReplicasError``, as the same write outside a script does."""
    try:
        return conn.eval(script, len(keys), *keys, *args)
    except redis.exceptions.OutOfMemoryError:
        raise
    except redis.exceptions.ResponseError as exc:
        if _OOM_MESSAGE in str(exc):
            raise redis.exceptions.OutOfMemoryError(str(exc)) from exc
        if refused_for_replicas(str(exc)):
            raise NoReplicasError(str(exc)) from exc
        raise
