"""The rq task. Its only argument is a job id; everything else is read from the store.

One call is one attempt. An attempt resumes from the job's last checkpoint when there is one,
so a job interrupted by a dead or stopped worker ends with the bits of an uninterrupted run.
"""

import functools
import logging
import time

import redis
from rq.timeouts import JobTimeoutException

import store
from backprop import CheckpointError, DivergenceError, Model, SpecError, Trainer
from store import FINAL_STATUSES, JobRecord, JobStatus, ModelMeta, logs, queue
from store.config import SentinelConfig, SharedConfig
from store.models import lineage

from . import metrics, runtime, sweep_trials
from .progress import REDIS_ERRORS, JobMonitor, StopReason, refusal
from .settings import Settings, worker_identity

log = logging.getLogger(__name__)


def connection():
    """One Redis client (and connection pool) per worker process and Redis (REDIS_URL, or
    the sentinels' master), across jobs."""
    shared = SharedConfig.from_env()
    return _client(shared.redis_url, shared.sentinel)


@functools.cache
def _client(url: str, sentinel: SentinelConfig | None):
    return store.connect(url, sentinel=sentinel)


def train_job(job_id: str) -> dict:
    """Run one attempt at job ``job_id``.

    Returns:
        A small JSON-able summary, which rq keeps as its job result.
    """
    conn = connection()
    record = store.get_job(conn, job_id)
    # Every line about the job, ours and the libraries', carries its id and its submitter's.
    request_id = None if record is None else record.get("request_id")
    with logs.bound(job_id=job_id, request_id=request_id):
        return _run(conn, job_id, record)


def _run(conn, job_id: str, record: JobRecord | None) -> dict:
    settings = Settings.from_env()
    if record is None or record["status"] in FINAL_STATUSES:
        return {"skipped": "no such job" if record is None else record["status"]}
    owner = worker_identity()
    if not store.acquire_lease(conn, job_id, owner, settings.lease_ms):
        return {"skipped": "another worker runs it"}
    runtime.begin(job_id)  # the heartbeat keeps the lease alive while the data loads, too
    lease_lost = False
    try:
        outcome = _attempt(conn, job_id, record, settings, owner)
        lease_lost = outcome.get("stopped") == StopReason.LEASE_LOST
        return outcome
    except REDIS_ERRORS:
        # Redis stayed unreachable or full: the job keeps its last checkpoint and no lease, and
        # the reaper puts it back on the queue once Redis takes writes again.
        raise
    except JobTimeoutException:
        message = "the attempt passed rq's hard time limit"
        return _persist(
            settings,
            job_id,
            lambda: _end(conn, record, settings, JobStatus.FAILED, ("timeout", message)),
        )
    except Exception as exc:
        # The boundary of a job: an error nobody foresaw fails this job, once, instead of
        # killing the attempt and having the reaper retry a poison job forever.
        log.exception("job %s: attempt failed", job_id)
        error = ("internal_error", f"{type(exc).__name__}: {exc}")
        return _persist(
            settings, job_id, lambda: _end(conn, record, settings, JobStatus.FAILED, error)
        )
    finally:
        runtime.end()
        if not lease_lost:
            # Deleting a key works even when Redis is full.
            _persist(settings, job_id, lambda: store.release_lease(conn, job_id, owner))


def _attempt(conn, job_id: str, record: JobRecord, settings: Settings, owner: str) -> dict:
    spec, arrays = store.load_spec_and_arrays(conn, job_id)
    dataset_id = record.get("dataset_id")
    if dataset_id is not None:
        data = store.load_dataset_arrays(conn, dataset_id)
        if data is None:
            message = f"dataset {dataset_id} was deleted before the job could train on it"
            return _end(conn, record, settings, JobStatus.FAILED, ("dataset_missing", message))
        arrays.update(data)
    validation = (arrays["X_val"], arrays["y_val"]) if "X_val" in arrays else None
    parent_id = spec.get("initial_model_id")
    initial_model = None
    if parent_id is not None:
        blob = store.load_model_bytes(conn, parent_id)
        if blob is None:
            message = f"initial model {parent_id} was deleted before the job could start from it"
            error = ("initial_model_missing", message)
            return _end(conn, record, settings, JobStatus.FAILED, error)
        initial_model = Model.from_bytes(blob)
    try:
        trainer = Trainer(spec, arrays["X"], arrays["y"], validation, initial_model)
    except SpecError as exc:
        return _end(conn, record, settings, JobStatus.FAILED, ("invalid_spec", str(exc)))
    if record.get("attempts"):
        # Only an attempt that has started before can have left a checkpoint or history.
        _resume(conn, job_id, trainer)
    if not store.start_attempt(conn, job_id, _tenant(record)):
        return {"skipped": "canceled before it started"}
    monitor = JobMonitor(
        conn,
        job_id,
        trainer,
        settings,
        record.get("max_runtime_seconds"),
        record.get("runtime_seconds", 0.0),
        sweep_trials.for_job(conn, record),
    )
    runtime.attach(monitor)
    try:
        # Metrics are only read at a flush: computing them then costs tiny networks far less.
        trainer.fit(monitor, defer_metrics=True)
    except DivergenceError as exc:
        _persist(settings, job_id, lambda: monitor.flush(strict=True))
        return _end(conn, record, settings, JobStatus.FAILED, ("diverged", str(exc)))
    except runtime.JobStopped:
        monitor.request_stop(StopReason.CANCEL)

    reason = monitor.stop_reason
    if reason == StopReason.LEASE_LOST:
        # Another worker owns the job now, and its history: write nothing more.
        log.warning("job %s: another worker took it over; stopping this attempt", job_id)
        monitor.count_epochs()
        return {"stopped": reason, "epoch": trainer.epoch}
    if _persist(settings, job_id, lambda: monitor.flush(strict=True)) and reason is None:
        reason = StopReason.CANCEL  # canceled while its last epochs ran
    if reason == StopReason.CANCEL:
        return _end(conn, record, settings, JobStatus.CANCELED)
    if reason == StopReason.TIMEOUT:
        limit = record.get("max_runtime_seconds")
        message = f"training passed its max_runtime_seconds ({limit}) at epoch {trainer.epoch}"
        return _end(conn, record, settings, JobStatus.FAILED, ("timeout", message))
    if reason == StopReason.SHUTDOWN:
        _persist(settings, job_id, lambda: monitor.checkpoint(strict=True))
        # Let go of the job before it is queued again, so the next worker can take it at once.
        _persist(settings, job_id, lambda: store.release_lease(conn, job_id, owner))
        _persist(settings, job_id, lambda: queue.requeue(conn, record))
        log.info("job %s: checkpointed at epoch %d and requeued", job_id, trainer.epoch)
        return {"stopped": reason, "epoch": trainer.epoch}
    return _publish(conn, record, trainer, settings)


def _resume(conn, job_id: str, trainer: Trainer) -> None:
    """Load the job's last checkpoint, if any, and make the stored history agree with it."""
    blob = store.load_checkpoint(conn, job_id)
    if blob is not None:
        try:
            trainer.restore(blob)
            log.info("job %s: resuming from epoch %d", job_id, trainer.epoch)
        except CheckpointError as exc:
            log.warning("job %s: checkpoint unusable (%s); starting over", job_id, exc)
    # History flushed after the checkpoint was taken would be recorded twice otherwise.
    store.replace_history(conn, job_id, trainer.history if trainer.epoch else {})


def _publish(conn, record: JobRecord, trainer: Trainer, settings: Settings) -> dict:
    """Store the model (its id is the job's) and mark the job finished.

    A model that a full Redis still has no room for after the final-write patience fails its
    job with ``storage_full``: the failure is a small write that fits where the model did not,
    it frees the job's checkpoint and quota slot, and it tells the owner, whose resubmission
    later trains the same model. Requeueing would train it again only to need the same space.
    """
    job_id = record["id"]
    model = trainer.model()
    info = model.info
    meta: ModelMeta = {
        "id": job_id,
        "job_id": job_id,
        "tenant": _tenant(record),
        "created_at": store.now_iso(),
        # Initial weights can be megabytes; they stay in the model bytes, not in its description.
        "spec": {k: v for k, v in model.spec.items() if k != "initial_weights"},
        "n_inputs": model.n_inputs,
        "n_outputs": model.n_outputs,
        "n_params": model.n_params,
        "final_loss": info["final"].get("loss"),
        "final_metrics": {k: v for k, v in info["final"].items() if k != "loss"},
        "epochs_run": info["epochs_run"],
        "stopped_early": info["stopped_early"],
        "best_epoch": info["best_epoch"],
        "classes": model.classes,
        "parent_id": model.spec.get("initial_model_id"),
        "lineage": lineage(conn, model.spec.get("initial_model_id")),
    }
    blob = model.to_bytes()
    try:
        _persist(settings, job_id, lambda: store.save_model(conn, job_id, blob, meta))
    except redis.exceptions.OutOfMemoryError:
        message = (
            f"Redis stayed full (maxmemory) for {settings.final_write_patience_seconds:g} s: "
            f"the trained model ({len(blob):,} bytes) could not be stored. Free space and "
            "submit the job again."
        )
        error = ("storage_full", message)
        return _persist(
            settings, job_id, lambda: _end(conn, record, settings, JobStatus.FAILED, error)
        )
    finished = {"model_id": job_id, "meta": meta}
    _persist(settings, job_id, lambda: _end(conn, record, settings, JobStatus.FINISHED, **finished))
    log.info("job %s finished after %d epochs", job_id, info["epochs_run"])
    return {"model_id": job_id, "epochs_run": info["epochs_run"]}


def _end(conn, record: JobRecord, settings, status, error=None, **fields) -> dict:
    """Record how the job ``record`` ended; ``error`` is ``(code, message)`` for a failure."""
    job_id = record["id"]
    if error is not None:
        fields["error"] = {"code": error[0], "message": error[1]}
    store.finish_job(
        conn,
        job_id,
        settings.data_ttl_seconds,
        owner=_tenant(record),  # the caller has the record: the tenant is not read again
        status=status,
        ended_at=store.now_iso(),
        **fields,
    )
    metrics.job_ended(status, error[0] if error else None, _training_seconds())
    if error is not None:
        log.warning("job %s failed: %s: %s", job_id, *error)
    return {"status": str(status), **({"error": error[0]} if error else {})}


def _tenant(record: JobRecord) -> str:
    return record.get("tenant", store.PUBLIC_TENANT)  # none: stored before tenants were


def _training_seconds() -> float | None:
    """The running job's training time over all its attempts; None before it trained."""
    monitor = runtime.current.monitor
    return None if monitor is None else monitor.runtime(time.monotonic())


def _persist(settings: Settings, job_id: str, write):
    """Run a final write of job ``job_id``; while Redis is unreachable or full, retry it for up
    to ``settings.final_write_patience_seconds``, then raise the last error."""
    patience = settings.final_write_patience_seconds
    deadline = time.monotonic() + patience
    delay = 0.1
    waited = False
    while True:
        try:
            result = write()
        except REDIS_ERRORS as exc:
            if time.monotonic() > deadline:
                log.error(
                    "job %s: %s; gave up a final write after %g s", job_id, refusal(exc), patience
                )
                raise
            if not waited:
                log.warning(
                    "job %s: %s; retrying a final write for up to %g s",
                    job_id,
                    refusal(exc),
                    patience,
                )
                waited = True
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            if waited:
                log.info("job %s: final write stored", job_id)
            return result
