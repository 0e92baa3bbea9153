"""Accepting a training job: check it against its data and the limits, then store and queue it.

Plain arguments in, a stored job record (or an estimate) out, typed errors
(``service.exceptions``) for every refusal: no Flask here, so the logic is testable without
HTTP and other features (sweeps, webhooks) can submit jobs the same way.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

import store
from backprop import SpecError
from backprop.spec import check_job_data
from backprop.warm_start import Parent
from backprop.warm_start import check as check_warm_start
from store import Callback, JobRecord, queue, webhooks

from . import aliases, budget
from .auth import Tenant
from .exceptions import (
    IdempotencyKeyReused,
    IdempotentRequestInFlight,
    InvalidJob,
    TooManyActiveJobs,
)
from .metrics import JOBS_CANCELED, JOBS_SUBMITTED

log = logging.getLogger(__name__)

BUDGET_LIMITS = ("MAX_PARAMETERS", "MAX_TRAINING_FLOPS", "MAX_TRAINING_MEMORY_BYTES")


@dataclass(frozen=True)
class Plan:
    """A job checked and costed, ready to be stored.

    Attributes:
        spec: the normalised spec; arrays: its inline arrays (npy-able).
        dataset_id: the stored dataset it trains on, or None for inline data.
        cost: ``budget.estimate``'s figures; max_runtime_seconds: its runtime cap.
        callbacks: its webhooks, each checked (``check_callbacks``).
        name, tags, metadata: its labels (``store.labels``).
    """

    spec: dict
    arrays: dict
    dataset_id: str | None
    cost: dict
    max_runtime_seconds: float
    callbacks: list[Callback] = field(default_factory=list)
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def plan(
    conn: redis.Redis, job: dict, tenant: Tenant, config: Mapping, check_hooks: bool = True
) -> Plan:
    """Check a loaded ``JobCreateSchema`` against its data and the limits in ``config``.

    ``check_hooks=False`` skips ``check_callbacks`` (a sweep checks its trials' callbacks, the
    same for every trial, once: each check resolves every URL's host).

    Raises:
        InvalidJob: naming the field at fault.
    """
    spec, arrays, shape = job["spec"], job["arrays"], job["shape"]
    dataset_id = job["dataset_id"]
    if dataset_id is not None:
        shape = dataset_shape(conn, dataset_id, spec, arrays, tenant)
    if "initial_model_id" in spec:
        source = "data" if dataset_id is None else "dataset_id"
        check_initial_model(conn, spec, shape, tenant, source)
    n_val = len(arrays["X_val"]) if "X_val" in arrays else 0
    cost = budget.estimate(spec, shape["rows"], shape["columns"], n_val)
    over = budget.violations(cost, config)
    if over:
        raise InvalidJob("The job exceeds a limit.", over)
    max_runtime = job["max_runtime_seconds"] or config["DEFAULT_MAX_RUNTIME_SECONDS"]
    if max_runtime > config["MAX_RUNTIME_SECONDS"]:
        limit = config["MAX_RUNTIME_SECONDS"]
        path = "training.max_runtime_seconds"
        raise InvalidJob(f"{path} is too long.", {path: [f"Must be at most {limit}."]})
    callbacks = job.get("callbacks") or []
    if check_hooks:
        check_callbacks(conn, callbacks, tenant, config["WEBHOOK_ALLOW_PRIVATE"])
    return Plan(
        spec,
        arrays,
        dataset_id,
        cost,
        max_runtime,
        callbacks,
        name=job.get("name"),
        tags=job.get("tags") or [],
        metadata=job.get("metadata") or {},
    )


def check_callbacks(
    conn: redis.Redis, callbacks: list[Callback], tenant: Tenant, allow_private: bool
) -> None:
    """The tenant has a secret to sign with, and each URL's host resolves to public addresses
    only (any address with ``allow_private``).

    Raises:
        InvalidJob: naming ``callbacks`` or the URL at fault.
    """
    if callbacks and webhooks.secret_created_at(conn, tenant.name) is None:
        message = "No webhook secret to sign with: create one with POST /v1/webhooks/secret."
        raise InvalidJob(message, {"callbacks": [message]})
    for i, callback in enumerate(callbacks):
        try:
            where = webhooks.target(callback["url"])
            webhooks.public_address(where.host, where.port, allow_private)
        except ValueError as exc:  # RefusedAddress is one
            raise InvalidJob(str(exc), {f"callbacks.{i}.url": [str(exc)]}) from exc


def dataset_shape(
    conn: redis.Redis, dataset_id: str, spec: dict, arrays: dict, tenant: Tenant
) -> dict:
    """The shape of the tenant's dataset, checked against the job.

    Raises:
        InvalidJob: no such dataset for this tenant, or it does not fit the job.
    """
    record = store.get_dataset(conn, dataset_id)
    if record is None or not tenant.owns(record):
        raise InvalidJob("Unknown dataset.", {"dataset_id": [f"No dataset {dataset_id}."]})
    try:
        validation = (arrays["X_val"], arrays["y_val"]) if "X_val" in arrays else None
        check_job_data(spec, record, validation, "dataset_id")
    except SpecError as exc:
        raise InvalidJob(str(exc), {exc.path: [exc.message]}) from exc
    return record


def check_initial_model(
    conn: redis.Redis, spec: dict, shape: dict, tenant: Tenant, source: str
) -> None:
    """A warm start's model (an id, or an alias: the spec then records the id it points at) is
    the tenant's, finished, and fits the job (``warm_start.check``).

    Raises:
        InvalidJob: naming ``initial_model_id``, or the layer or field that does not fit.
    """
    ref = spec["initial_model_id"]
    model_id = aliases.resolve(conn, tenant.name, ref)
    meta = None if model_id is None else store.load_model_meta(conn, model_id)
    if meta is None or not tenant.owns(meta):
        message = f"No model {ref}: give the id or alias of a trained model of yours."
        raise InvalidJob(message, {"initial_model_id": [message]})
    spec["initial_model_id"] = model_id  # the job records the model, not what the alias was
    parent = Parent(model_id, meta["n_inputs"], meta["spec"], meta.get("classes"))
    try:
        check_warm_start(spec, shape, parent, source)
    except SpecError as exc:
        raise InvalidJob(str(exc), {exc.path: [exc.message]}) from exc


def dry_run(plan: Plan, config: Mapping) -> dict:
    """What a dry run answers: the estimate and the limits it was checked against."""
    limits = {name.lower(): config[name] for name in BUDGET_LIMITS}
    return {"valid": True, "estimate": plan.cost, "limits": limits}


def submit(
    conn: redis.Redis,
    plan: Plan,
    tenant: str,
    max_active_jobs: int,
    idempotency: tuple[str, str] | None = None,
    request_id: str | None = None,
) -> JobRecord:
    """Store the job and queue its id; with ``idempotency`` ``(key, body hash)``, a retry of
    the same body returns the job the first request stored. ``request_id`` is stored with the
    job, for the log lines of the workers that train it.

    Raises:
        IdempotencyKeyReused, IdempotentRequestInFlight: see ``service.exceptions``.
        TooManyActiveJobs: the tenant is at ``max_active_jobs``.
    """
    job_id = store.new_id()
    if idempotency is not None:
        prior = claim_key(conn, tenant, *idempotency, job_id)
        if prior is not None:
            return prior
    try:
        if not store.reserve_job_slot(conn, tenant, job_id, max_active_jobs):
            raise TooManyActiveJobs(
                f"Too many active jobs: at most {max_active_jobs} queued or started at once."
            )
        record = store_plan(conn, job_id, plan, tenant, request_id)
        queue.enqueue(conn, record)
    except BaseException:
        # Nothing of a refused submission stays (e.g. Redis filled up part way): its job, its
        # quota slot and its idempotency key, so that a retry starts afresh.
        store.discard_job(conn, job_id, tenant)
        if idempotency is not None:
            store.forget_idempotent(conn, tenant, idempotency[0], job_id)
        raise
    if idempotency is not None:
        store.confirm_idempotent(conn, tenant, idempotency[0])
    JOBS_SUBMITTED.inc()
    log.info("job %s queued", job_id, extra={"job_id": job_id})
    return record


def store_plan(
    conn: redis.Redis,
    job_id: str,
    plan: Plan,
    tenant: str,
    request_id: str | None,
    *,
    sweep_id: str | None = None,
    parameters: dict | None = None,
) -> JobRecord:
    """Store ``plan`` as job ``job_id``, not yet queued: a submitted job, or one of a sweep's
    trials (with its ``sweep_id`` and the ``parameters`` it was given)."""
    return store.create_job(
        conn,
        job_id,
        plan.spec,
        plan.arrays,
        plan.spec["training"]["epochs"],
        plan.max_runtime_seconds,
        tenant,
        dataset_id=plan.dataset_id,
        callbacks=plan.callbacks,
        request_id=request_id,
        name=plan.name,
        tags=plan.tags,
        metadata=plan.metadata,
        sweep_id=sweep_id,
        parameters=parameters,
    )


def claim_key(
    conn: redis.Redis, tenant: str, key: str, body_hash: str, job_id: str
) -> JobRecord | None:
    """Bind ``key`` to this body and ``job_id``; the earlier job when the key is a retry's."""
    prior = store.remember_idempotent(conn, tenant, key, body_hash, job_id)
    if prior is None:
        return None
    if prior["hash"] != body_hash:
        raise IdempotencyKeyReused("This Idempotency-Key was used with a different body.")
    record = store.get_job(conn, prior["job_id"])
    if record is None:
        raise IdempotentRequestInFlight(
            "A request with this Idempotency-Key is still being handled."
        )
    return record


def cancel(conn: redis.Redis, job_id: str, tenant: str, data_ttl_seconds: int) -> bool:
    """Cancel an unfinished job: a queued one at once (True), a started one at its next epoch
    boundary, through its cancel flag (False)."""
    if store.cancel_if_queued(conn, job_id, store.now_iso(), tenant):
        JOBS_CANCELED.labels(stage="queued").inc()
        store.tidy_ended_job(conn, job_id, data_ttl_seconds)
        return True
    store.request_cancel(conn, job_id)
    return False
