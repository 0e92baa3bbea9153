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
        # Compute budget of one job, checked before it is queued (see service/budget.py).
        "MAX_PARAMETERS": int(float(env.get("MAX_PARAMETERS", 10_000_000))),
        "MAX_TRAINING_FLOPS": float(env.get("MAX_TRAINING_FLOPS", 1e15)),
        # Queued plus started jobs one tenant may have at once.
        "MAX_ACTIVE_JOBS": int(env.get("MAX_ACTIVE_JOBS", 20)),
        # flask-limiter rate limits per API key (per client address when auth is off).
        "RATE_LIMIT": env.get("RATE_LIMIT", "6000/minute"),
        "RATE_LIMIT_SUBMIT": env.get("RATE_LIMIT_SUBMIT", "120/minute"),
    }
