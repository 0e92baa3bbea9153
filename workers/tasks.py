"""The rq task. Its only argument is a job id; everything else is read from the store."""

import logging

import store
from backprop import DivergenceError, SpecError, Trainer
from store import FINAL_STATUSES, JobStatus

from .progress import ProgressReporter

log = logging.getLogger(__name__)


def train_job(job_id: str) -> dict:
    """Train the job ``job_id`` and publish its model.

    Returns:
        A small JSON-able summary, which rq keeps as the job's result.
    """
    conn = store.connect()
    record = store.get_job(conn, job_id)
    if record is None or record["status"] in FINAL_STATUSES:
        return {"skipped": True}
    spec = store.load_spec(conn, job_id)
    arrays = store.load_arrays(conn, job_id)
    validation = (arrays["X_val"], arrays["y_val"]) if "X_val" in arrays else None
    try:
        trainer = Trainer(spec, arrays["X"], arrays["y"], validation)
    except SpecError as exc:
        return _fail(conn, job_id, "invalid_spec", str(exc))

    store.update_job(
        conn,
        job_id,
        status=JobStatus.STARTED,
        started_at=record.get("started_at") or store.now_iso(),
        attempts=record.get("attempts", 0) + 1,
    )
    reporter = ProgressReporter(conn, job_id, trainer)
    try:
        trainer.fit(reporter)
    except DivergenceError as exc:
        reporter.flush()
        return _fail(conn, job_id, "diverged", str(exc))
    reporter.flush()
    return _publish(conn, job_id, trainer)


def _publish(conn, job_id: str, trainer) -> dict:
    """Store the model (its id is the job's) and mark the job finished."""
    model = trainer.model()
    info = model.info
    meta = {
        "id": job_id,
        "job_id": job_id,
        "created_at": store.now_iso(),
        "spec": model.spec,
        "n_inputs": model.n_inputs,
        "n_outputs": model.n_outputs,
        "n_params": model.n_params,
        "final_loss": info["final"].get("loss"),
        "final_metrics": {k: v for k, v in info["final"].items() if k != "loss"},
        "epochs_run": info["epochs_run"],
        "stopped_early": info["stopped_early"],
        "best_epoch": info["best_epoch"],
    }
    store.save_model(conn, job_id, model.to_bytes(), meta)
    store.update_job(
        conn, job_id, status=JobStatus.FINISHED, model_id=job_id, ended_at=store.now_iso()
    )
    log.info("job %s finished after %d epochs", job_id, info["epochs_run"])
    return {"model_id": job_id, "epochs_run": info["epochs_run"]}


def _fail(conn, job_id: str, code: str, message: str) -> dict:
    store.update_job(
        conn,
        job_id,
        status=JobStatus.FAILED,
        error={"code": code, "message": message},
        ended_at=store.now_iso(),
    )
    log.warning("job %s failed: %s: %s", job_id, code, message)
    return {"error": code}
