"""Every Redis key name the service uses, in one place: ``bp:<concept>:<id>[:<part>]``."""

PREFIX = "bp"
# The tenant every caller is with auth off, and the owner of a job stored before tenants were.
PUBLIC_TENANT = "public"
JOBS_INDEX = f"{PREFIX}:jobs"
ACTIVE_JOBS = f"{PREFIX}:jobs:active"  # queued and started jobs (the reaper reads LEASE_DEADLINES)
RATE_LIMIT_PREFIX = f"{PREFIX}:ratelimit"  # flask-limiter's counters live under this
LIVE_WORKERS = f"{PREFIX}:workers:live"  # identity -> when its last beat expires (Redis time)
# job id -> when its lease, or a worker's claim on a job it has just dequeued, runs out (Redis
# time, ms): the reaper reads only the entries past their deadline.
LEASE_DEADLINES = f"{PREFIX}:jobs:lease_deadlines"
LEASE_DEADLINES_SEEDED = f"{LEASE_DEADLINES}:seeded"  # set once older leases have deadlines
CANCEL_REQUESTS = f"{PREFIX}:jobs:cancel_requests"  # job id -> when its cancel was asked (epoch s)


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def spec_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:spec"


def array_key(job_id: str, name: str) -> str:
    return f"{PREFIX}:job:{job_id}:array:{name}"


def history_key(job_id: str, column: str) -> str:
    return f"{PREFIX}:job:{job_id}:history:{column}"


def history_columns_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:history"


def events_key(job_id: str) -> str:
    """A capped stream of the job's changes, which followers block on (``store.events``)."""
    return f"{PREFIX}:job:{job_id}:events"


def checkpoint_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:checkpoint"


def tenant_jobs_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}:jobs"


def tenant_active_key(tenant: str) -> str:
    """Queued and started jobs of one tenant, which its quota counts."""
    return f"{PREFIX}:tenant:{tenant}:active"


def lease_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:lease"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:cancel"


def idempotency_key(scope: str, key: str) -> str:
    return f"{PREFIX}:idempotency:{scope}:{key}"


def model_key(model_id: str) -> str:
    return f"{PREFIX}:model:{model_id}"


def model_meta_key(model_id: str) -> str:
    return f"{PREFIX}:model:{model_id}:meta"


def dataset_key(dataset_id: str) -> str:
    return f"{PREFIX}:dataset:{dataset_id}"


def dataset_array_key(dataset_id: str, name: str) -> str:
    return f"{PREFIX}:dataset:{dataset_id}:array:{name}"


def reservation_key(job_id: str) -> str:
    """Marks a quota slot reserved by a request that has not stored its job yet."""
    return f"{job_key(job_id)}:reserved"


def webhook_secret_key(tenant: str) -> str:
    """The tenant's webhook signing secret and when it was made (a hash)."""
    return f"{PREFIX}:tenant:{tenant}:webhook_secret"


def job_deliveries_key(job_id: str) -> str:
    """The ids of a job's webhook deliveries, oldest first (a list)."""
    return f"{PREFIX}:job:{job_id}:deliveries"


def delivery_key(delivery_id: str) -> str:
    return f"{PREFIX}:delivery:{delivery_id}"


def delivery_attempts_key(delivery_id: str) -> str:
    """One JSON record per attempt at a delivery, oldest first (a list)."""
    return f"{PREFIX}:delivery:{delivery_id}:attempts"


def search_key(tenant: str | None, index: str, value: str = "") -> str:
    """A search index (``store.search``) of one tenant's jobs, or of every tenant's (None).

    Args:
        index: ``status``, ``tag``, ``dataset``, ``sweep``, ``metric`` (each with a ``value``)
            or ``name`` (the lex index).
    """
    scope = "all" if tenant is None else f"tenant:{tenant}"
    return f"{PREFIX}:search:{scope}:{index}:{value}"


def tenant_aliases_key(tenant: str) -> str:
    """The tenant's model aliases: name -> model id (a hash)."""
    return f"{PREFIX}:tenant:{tenant}:aliases"


def alias_history_key(tenant: str, name: str) -> str:
    """The moves of one alias, newest first, capped (a list of JSON records)."""
    return f"{PREFIX}:tenant:{tenant}:alias:{name}:history"


def model_aliases_key(model_id: str) -> str:
    """The aliases that point at a model, as JSON ``[tenant, name]`` (a set)."""
    return f"{PREFIX}:model:{model_id}:aliases"


def sweep_key(sweep_id: str) -> str:
    """A sweep's record (a hash, ``store.sweeps``)."""
    return f"{PREFIX}:sweep:{sweep_id}"


def sweep_trials_key(sweep_id: str) -> str:
    """The job ids of a sweep's trials, in trial order (a list)."""
    return f"{PREFIX}:sweep:{sweep_id}:trials"


def sweep_pending_key(sweep_id: str) -> str:
    """The trials not handed to rq yet, next first (a list)."""
    return f"{PREFIX}:sweep:{sweep_id}:pending"


def sweep_running_key(sweep_id: str) -> str:
    """The trials handed to rq that have not ended: at most the sweep's ``parallel`` (a set)."""
    return f"{PREFIX}:sweep:{sweep_id}:running"


def tenant_sweeps_key(tenant: str) -> str:
    return f"{PREFIX}:tenant:{tenant}:sweeps"


# One-off migrations (store.migrations): the format version the stored jobs' search indexes
# were last brought to, and the lock of the process bringing them there.
SEARCH_INDEX_VERSION = f"{PREFIX}:migrations:search_index"


def migration_lock_key(marker: str) -> str:
    return f"{marker}:lock"
