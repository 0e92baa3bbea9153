"""The Redis client both sides use."""

import os

import redis


def connect(url: str | None = None) -> redis.Redis:
    """A client for ``url`` (default: the REDIS_URL environment variable)."""
    url = url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=10
    )
