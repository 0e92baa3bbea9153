"""Configuration from the environment, with the defaults a local ``make run`` needs."""

import os

MIB = 1024 * 1024


def from_env(env=os.environ) -> dict:
    """Flask config keys read from environment variables."""
    return {
        "REDIS_URL": env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", 64 * MIB)),
        "MODEL_CACHE_BYTES": int(env.get("MODEL_CACHE_BYTES", 256 * MIB)),
        # Training time a job may use over all its attempts, unless it asks for less/more.
        "DEFAULT_MAX_RUNTIME_SECONDS": float(env.get("DEFAULT_MAX_RUNTIME_SECONDS", 3600)),
        "MAX_RUNTIME_SECONDS": float(env.get("MAX_RUNTIME_SECONDS", 24 * 3600)),
    }
