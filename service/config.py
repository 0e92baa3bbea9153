"""Configuration from the environment, with the defaults a local ``make run`` needs."""

import os

MIB = 1024 * 1024


def from_env(env=os.environ) -> dict:
    """Flask config keys read from environment variables."""
    return {
        "REDIS_URL": env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", 64 * MIB)),
        "MODEL_CACHE_BYTES": int(env.get("MODEL_CACHE_BYTES", 256 * MIB)),
        "JOB_TIMEOUT_SECONDS": int(env.get("JOB_TIMEOUT_SECONDS", 24 * 3600)),
        "RESULT_TTL_SECONDS": int(env.get("RESULT_TTL_SECONDS", 7 * 24 * 3600)),
        "FAILURE_TTL_SECONDS": int(env.get("FAILURE_TTL_SECONDS", 7 * 24 * 3600)),
    }
