"""Configuration from the environment, with the defaults a local ``make run`` needs."""

import os

from store.config import SharedConfig, WebhookConfig

MIB = 1024 * 1024


def from_env(env=os.environ) -> dict:
    """Flask config keys read from environment variables (the shared ones by store.config)."""
    shared = SharedConfig.from_env(env)
    return {
        "REDIS_URL": shared.redis_url,
        # Redis Sentinel (REDIS_SENTINELS, ...): when set, the master it reports, not REDIS_URL.
        "REDIS_SENTINEL": shared.sentinel,
        # The largest body of any kind; binary /v2 tensors are bounded by it.
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", 64 * MIB)),
        # JSON bodies, checked before a byte is read: parsing takes several times their size in
        # memory and about 0.1 s per MB, so big numbers go in binary forms (see service/bodies.py).
        "MAX_JSON_BODY_BYTES": int(env.get("MAX_JSON_BODY_BYTES", 16 * MIB)),
        # Seconds a request body may go without a byte before it is answered 408 and dropped,
        # so stalled uploads do not hold the server's threads.
        "BODY_TIMEOUT_SECONDS": float(env.get("BODY_TIMEOUT_SECONDS", 10)),
        # Parameters a model's weights may have to be served as JSON (about 20 bytes each);
        # larger models are served as .npz only.
        "MAX_JSON_WEIGHTS": int(float(env.get("MAX_JSON_WEIGHTS", 1_000_000))),
        # CSV and NumPy dataset uploads: the largest body, and the most their arrays may take
        # (Redis keeps each array in one string, 512 MiB at most).
        "MAX_DATASET_BYTES": int(env.get("MAX_DATASET_BYTES", 512 * MIB)),
        # Columns (inputs and targets) one dataset may have: a CSV header wider than this is
        # refused before anything is parsed.
        "MAX_COLUMNS": int(env.get("MAX_COLUMNS", 10_000)),
        "MODEL_CACHE_BYTES": int(env.get("MODEL_CACHE_BYTES", 256 * MIB)),
        # Threads per API process for requests (gunicorn's gthread), and followers (event
        # streams and long polls) one process keeps open at once, each on a thread of its own
        # (see server_threads); past them followers are answered 503 with Retry-After.
        "WEB_THREADS": int(env.get("WEB_THREADS", 16)),
        "EVENTS_MAX_STREAMS": int(env.get("EVENTS_MAX_STREAMS", 100)),
        # An event stream that has sent nothing for this long sends a comment line.
        "EVENTS_HEARTBEAT_SECONDS": float(env.get("EVENTS_HEARTBEAT_SECONDS", 15)),
        # Rows one prediction request may carry, and rows per forward pass within it.
        "PREDICT_MAX_ROWS": int(env.get("PREDICT_MAX_ROWS", 100_000)),
        "PREDICT_BATCH_ROWS": int(env.get("PREDICT_BATCH_ROWS", 8192)),
        # Training time a job may use over all its attempts, unless it asks for less/more.
        "DEFAULT_MAX_RUNTIME_SECONDS": float(env.get("DEFAULT_MAX_RUNTIME_SECONDS", 3600)),
        "MAX_RUNTIME_SECONDS": float(env.get("MAX_RUNTIME_SECONDS", 24 * 3600)),
        # How long a job's training arrays are kept after it ends (the workers read it too).
        "DATA_TTL_SECONDS": shared.data_ttl_seconds,
        # Compute budget of one job, checked before it is queued (see service/budget.py).
        "MAX_PARAMETERS": int(float(env.get("MAX_PARAMETERS", 10_000_000))),
        "MAX_TRAINING_FLOPS": float(env.get("MAX_TRAINING_FLOPS", 1e15)),
        "MAX_TRAINING_MEMORY_BYTES": int(float(env.get("MAX_TRAINING_MEMORY_BYTES", 4 * 2**30))),
        # Queued plus started jobs one tenant may have at once; past it a submission is refused
        # (429, Retry-After). As many as RATE_LIMIT_SUBMIT lets in within its minute, so a burst
        # the rate limit accepts is queued, not refused (README, Security).
        "MAX_ACTIVE_JOBS": int(env.get("MAX_ACTIVE_JOBS", 120)),
        # Trials one sweep may have (each is a job, validated at submit; see service/sweeping.py).
        "MAX_SWEEP_TRIALS": int(env.get("MAX_SWEEP_TRIALS", 100)),
        # flask-limiter rate limits per API key (per client address when auth is off).
        "RATE_LIMIT": env.get("RATE_LIMIT", "6000/minute"),
        "RATE_LIMIT_SUBMIT": env.get("RATE_LIMIT_SUBMIT", "120/minute"),
        # Predictions (/v1 predict, /v2 infer) per tenant, in place of RATE_LIMIT:
        # 2,000/s, above the 1,000 to 1,200 single-row predictions/s that make bench-serve
        # measured from one 2-core host, so one tenant's limit is that host's capacity, not 100/s.
        "RATE_LIMIT_PREDICT": env.get("RATE_LIMIT_PREDICT", "120000/minute"),
        # Whether callbacks may name private addresses (the workers read it too).
        "WEBHOOK_ALLOW_PRIVATE": WebhookConfig.from_env(env).allow_private,
    }


def server_threads(config) -> int:
    """The threads one API process runs, and so the most Redis connections it uses at once:
    ``WEB_THREADS`` for requests and one for each follower it may keep open."""
    return config["WEB_THREADS"] + config["EVENTS_MAX_STREAMS"]
