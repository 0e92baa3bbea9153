"""The Redis client and model cache the app factory attaches to the app."""

from flask import Flask, current_app, request
from flask_limiter import Limiter

import store

from . import auth, endpoints
from .config import server_threads
from .model_cache import ModelCache


def rate_limit_key() -> str:
    """Counters per tenant for a valid key, per client address otherwise."""
    tenant = auth.tenant_from_header()
    return f"tenant:{tenant.name}" if tenant else f"addr:{request.remote_addr}"


def default_limit() -> str:
    """RATE_LIMIT, or RATE_LIMIT_PREDICT for a view declared ``@prediction``."""
    name = "RATE_LIMIT_PREDICT" if endpoints.is_prediction() else "RATE_LIMIT"
    return current_app.config[name]


# One limiter for the process; its limits are read from the serving app's config per request.
limiter = Limiter(
    key_func=rate_limit_key,
    default_limits=[default_limit],
    default_limits_exempt_when=endpoints.is_open,
)


def init_app(app: Flask) -> None:
    # One connection for each thread: followers hold theirs while they wait in Redis.
    conn = store.connect(
        app.config["REDIS_URL"],
        max_connections=server_threads(app.config),
        sentinel=app.config.get("REDIS_SENTINEL"),
    )
    app.extensions["redis"] = conn
    app.extensions["model_cache"] = ModelCache(app.config["MODEL_CACHE_BYTES"])
    # The limiter's counters go through the same pool (a thread uses it for the check before
    # its view, never during), so they follow a Sentinel failover too.
    app.config.setdefault("RATELIMIT_STORAGE_URI", "redis://")
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"connection_pool": conn.connection_pool})
    # X-RateLimit headers on every response cost a Redis round trip each; a 429 still carries
    # Retry-After (service.errors).
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    app.config.setdefault("RATELIMIT_KEY_PREFIX", store.RATE_LIMIT_PREFIX)
    # With Redis down the API answers 503 anyway; the limiter must not turn that into a 500.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)


def redis_conn():
    return current_app.extensions["redis"]


def model_cache() -> ModelCache:
    return current_app.extensions["model_cache"]
