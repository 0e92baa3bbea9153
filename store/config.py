"""The settings the API and the workers share, read from the environment here and only here.

``service.config`` (the API's) and ``workers.settings`` (the workers') take these from this
module and add their own.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

WEEK_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class SentinelConfig:
    """Redis Sentinel: where the sentinels are and which master they watch.

    Attributes:
        sentinels: ``(host, port)`` of each sentinel (REDIS_SENTINELS, ``host:port,...``).
        master_name: the name the sentinels monitor the master under (REDIS_MASTER_NAME).
        sentinel_password: the sentinels' own password, if they have one
            (REDIS_SENTINEL_PASSWORD).
        password: the master's and replicas' password, if they have one (REDIS_PASSWORD).
    """

    sentinels: tuple[tuple[str, int], ...]
    master_name: str = "mymaster"
    sentinel_password: str | None = None
    password: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "SentinelConfig | None":
        """The sentinels of REDIS_SENTINELS, or None when it is unset or empty."""
        items = env.get("REDIS_SENTINELS", "").split(",")
        sentinels = tuple(parse_address(item) for item in items if item.strip())
        if not sentinels:
            return None
        return cls(
            sentinels=sentinels,
            master_name=env.get("REDIS_MASTER_NAME") or cls.master_name,
            sentinel_password=env.get("REDIS_SENTINEL_PASSWORD") or None,
            password=env.get("REDIS_PASSWORD") or None,
        )


def parse_address(item: str) -> tuple[str, int]:
    """``"host:port"`` → ``("host", port)``; a ValueError names a malformed one."""
    host, _, port = item.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"REDIS_SENTINELS: {item.strip()!r} is not host:port")
    return host, int(port)


@dataclass(frozen=True)
class SharedConfig:
    """Attributes:
    redis_url: the Redis both sides use (REDIS_URL), unless ``sentinel`` is set.
    sentinel: the Sentinel-managed master both sides use instead (REDIS_SENTINELS, ...), or
        None.
    data_ttl_seconds: how long a job's training arrays outlive the job (DATA_TTL_SECONDS).
    result_ttl_seconds, failure_ttl_seconds: how long rq keeps its own records of finished
        and failed attempts (RESULT_TTL_SECONDS, FAILURE_TTL_SECONDS).
    """

    redis_url: str = "redis://127.0.0.1:6379/0"
    data_ttl_seconds: int = WEEK_SECONDS
    result_ttl_seconds: int = WEEK_SECONDS
    failure_ttl_seconds: int = WEEK_SECONDS
    sentinel: SentinelConfig | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "SharedConfig":
        return cls(
            redis_url=env.get("REDIS_URL") or cls.redis_url,
            data_ttl_seconds=int(env.get("DATA_TTL_SECONDS", cls.data_ttl_seconds)),
            result_ttl_seconds=int(env.get("RESULT_TTL_SECONDS", cls.result_ttl_seconds)),
            failure_ttl_seconds=int(env.get("FAILURE_TTL_SECONDS", cls.failure_ttl_seconds)),
            sentinel=SentinelConfig.from_env(env),
        )


# Exponential backoff after a failed webhook delivery: 30 s doubling to 32 min, 8 attempts over
# about an hour (63.5 min), then the delivery is marked failed.
WEBHOOK_RETRY_INTERVALS = (30, 60, 120, 240, 480, 960, 1920)


@dataclass(frozen=True)
class WebhookConfig:
    """Attributes:
    allow_private: callbacks may name loopback, link-local and private addresses
        (WEBHOOK_ALLOW_PRIVATE=1); refused at submit and at delivery otherwise.
    timeout_seconds: how long one delivery attempt waits to connect and for each read of the
        answer (WEBHOOK_TIMEOUT_SECONDS).
    retry_intervals: seconds between attempts (WEBHOOK_RETRY_INTERVALS, comma-separated
        whole seconds); one attempt more than intervals, then the delivery has failed.
    """

    allow_private: bool = False
    timeout_seconds: float = 10.0
    retry_intervals: tuple[int, ...] = WEBHOOK_RETRY_INTERVALS

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "WebhookConfig":
        intervals = env.get("WEBHOOK_RETRY_INTERVALS")
        return cls(
            allow_private=env.get("WEBHOOK_ALLOW_PRIVATE", "0") == "1",
            timeout_seconds=float(env.get("WEBHOOK_TIMEOUT_SECONDS", cls.timeout_seconds)),
            retry_intervals=cls.retry_intervals
            if intervals is None
            else tuple(int(s) for s in intervals.split(",") if s.strip()),
        )
