"""A Redis master without enough replicas refuses writes: the same "not now" as an outage.

With ``min-replicas-to-write N`` (deploy/k8s/overlays/sentinel/redis-values.yaml sets 1), a
master that has fewer than N replicas acknowledging within ``min-replicas-max-lag`` seconds
answers every write ``NOREPLICAS``, until a replica is back. redis-py knows no such error and
raises a plain ``ResponseError``, which the API answered 500 and which killed a worker. Here it
becomes ``NoReplicasError``, a ``ConnectionError``: the API answers 503 with Retry-After,
workers keep their progress in memory and write it later, and rq's loop waits, as they all do
while Redis is unreachable.
"""

import redis
from redis._parsers.base import BaseParser  # redis-py's map of error codes to exceptions

NO_REPLICAS = "NOREPLICAS"


class NoReplicasError(redis.exceptions.ConnectionError):
    """Redis refused a write: fewer good replicas than ``min-replicas-to-write``."""


# Every parser redis-py uses (RESP2, RESP3, hiredis) reads this one class-level table.
BaseParser.EXCEPTION_CLASSES.setdefault(NO_REPLICAS, NoReplicasError)


def refused_for_replicas(message: str) -> bool:
    """Whether an error message is a NOREPLICAS refusal, also as Redis 6 wraps one from inside
    a script (``ERR Error running script ... -NOREPLICAS ...``)."""
    return message.startswith(NO_REPLICAS) or f"-{NO_REPLICAS} " in message
