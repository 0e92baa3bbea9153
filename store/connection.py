"""The Redis client both sides use: every connection of the API, the workers (rq's too) and
``make run`` is built here, from the settings of ``store.config``."""

import functools

import redis
from redis.sentinel import Sentinel

from .config import SentinelConfig, SharedConfig


class NoReplicasError(redis.exceptions.ResponseError):
    """The master refuses writes: fewer replicas than its ``min-replicas-to-write`` are in
    touch (Redis's ``NOREPLICAS`` error), as after a failover until a replica has rejoined."""


# Redis cannot serve this now but will again without anyone's help: it is unreachable, a
# failover is under way (MasterNotFoundError is a ConnectionError), the connection is to a
# master that has since been demoted, or the master waits for its replicas. The API answers 503,
# and workers keep their writes and try again.
UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    NoReplicasError,
)

# The same for a plain and a Sentinel-managed client.
CLIENT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 10, "health_check_interval": 10}
# A sentinel answers at once or is down: ask the next one rather than wait.
SENTINEL_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def connect(
    url: str | None = None,
    max_connections: int | None = None,
    sentinel: SentinelConfig | None = None,
) -> redis.Redis:
    """A client of the Redis the environment names: the master that ``sentinel`` (default:
    REDIS_SENTINELS, see ``store.config``) reports, or else ``url`` (default: REDIS_URL).

    A Sentinel-managed client asks the sentinels for the master's address each time it opens
    a connection, so after a failover its new connections go to the promoted replica; a
    command on a connection to a master that has been demoted raises ConnectionError.

    Args:
        max_connections: the most connections its pool opens (redis-py's default: 100); a
            thread that needs one more gets ``redis.exceptions.MaxConnectionsError``.
    """
    if url is None and sentinel is None:
        shared = SharedConfig.from_env()
        url, sentinel = shared.redis_url, shared.sentinel
    if sentinel is not None:
        client = master_for(sentinel, max_connections)
    else:
        client = redis.Redis.from_url(url, max_connections=max_connections, **CLIENT_OPTIONS)
    pool = client.connection_pool
    pool.connection_class = _with_replies(pool.connection_class)
    return client


def close(client: redis.Redis) -> None:
    """Close ``client``'s connections, and the sentinels' it asked for its master, if any.

    redis-py's ``close`` of a ``master_for`` client leaves the Sentinel's own clients open;
    their sockets then warn (ResourceWarning) whenever the garbage collector finds them.
    """
    client.close()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    if manager is not None:
        manager.close()


def master_for(sentinel: SentinelConfig, max_connections: int | None = None) -> redis.Redis:
    """A client of the master that ``sentinel``'s sentinels report (redis-py's
    ``Sentinel.master_for``)."""
    password = {"password": sentinel.sentinel_password} if sentinel.sentinel_password else {}
    manager = Sentinel(list(sentinel.sentinels), sentinel_kwargs={**SENTINEL_OPTIONS, **password})
    return manager.master_for(
        sentinel.master_name,
        password=sentinel.password,
        max_connections=max_connections,
        **CLIENT_OPTIONS,
    )


class _Replies:
    """What every connection class of ours adds to redis-py's:

    - a read cut short by an exception (a signal's StopRequested or JobStopped, a timeout)
      drops the connection, so the next command cannot read the reply meant for this one.
      redis-py's ``Connection`` does this, but its Sentinel-managed one defaults
      ``disconnect_on_error`` to False (redis-py PR #4292): a worker stopped while blocked in
      BLPOP then hung in its next command until the BLPOP timed out. PubSub passes False
      itself, and still gets it.
    - Redis's NOREPLICAS reply, which redis-py leaves a plain ResponseError, raises
      NoReplicasError, in a command, a pipeline and a transaction alike.
    """

    def read_response(self, *args, **kwargs):
        kwargs.setdefault("disconnect_on_error", True)
        try:
            return super().read_response(*args, **kwargs)
        except redis.exceptions.ResponseError as exc:
            if type(exc) is redis.exceptions.ResponseError and str(exc).startswith("NOREPLICAS"):
                raise NoReplicasError(*exc.args) from exc
            raise


@functools.cache
def _with_replies(connection_class: type) -> type:
    """``connection_class`` (plain, TLS, unix socket, Sentinel-managed) with ``_Replies``."""
    return type(connection_class.__name__, (_Replies, connection_class), {})


# Redis 6 reports a write refused inside a Lua script as a plain script error ("ERR Error
# running script ... -OOM command not allowed ...", "... -READONLY You can't write against a
# read only replica.", "... -NOREPLICAS ..."), not as the error the same write outside a
# script raises.
_OOM_MESSAGE = "command not allowed when used memory > 'maxmemory'"
_READONLY_MESSAGE = "-READONLY "
_NOREPLICAS_MESSAGE = "-NOREPLICAS "


def eval_script(conn: redis.Redis, script: str, keys: list, *args):
    """EVAL ``script``; a write it could not make raises what the same write outside a script
    does: ``OutOfMemoryError`` (Redis is full), ``ReadOnlyError`` (a replica: this client's
    idle connections are dropped, so the next ones go to the master), ``NoReplicasError``."""
    try:
        return conn.eval(script, len(keys), *keys, *args)
    except (redis.exceptions.OutOfMemoryError, NoReplicasError):
        raise
    except redis.exceptions.ResponseError as exc:
        message = str(exc)
        if _OOM_MESSAGE in message:
            raise redis.exceptions.OutOfMemoryError(message) from exc
        if _READONLY_MESSAGE in message:
            # A demoted master: a Sentinel-managed pool asks the sentinels again on reconnecting.
            conn.connection_pool.disconnect(inuse_connections=False)
            raise redis.exceptions.ReadOnlyError(message) from exc
        if _NOREPLICAS_MESSAGE in message:
            raise NoReplicasError(message) from exc
        raise
