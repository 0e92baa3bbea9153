"""``/v1/jobs``: submit training jobs, follow them, read their history."""

from flask import current_app, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort

import store

from .extensions import queue, redis_conn
from .schemas import HistorySchema, JobCreateSchema, JobListQuerySchema, JobListSchema, JobSchema

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Training jobs")


def job_view(record: dict) -> dict:
    """A stored job record as the API shows it."""
    progress = record.get("progress") or {
        "epoch": 0,
        "epochs": record.get("epochs"),
        "loss": None,
        "val_loss": None,
        "eta_seconds": None,
    }
    return {
        "id": record["id"],
        "status": record["status"],
        "progress": progress,
        "created_at": record.get("created_at"),
        "started_at": record.get("started_at"),
        "ended_at": record.get("ended_at"),
        "attempts": record.get("attempts", 0),
        "error": record.get("error"),
        "model_id": record.get("model_id"),
    }


def get_or_404(job_id: str) -> dict:
    record = store.get_job(redis_conn(), job_id)
    if record is None:
        abort(404, message=f"No job {job_id}.")
    return record


@blp.route("")
class Jobs(MethodView):
    @blp.arguments(JobListQuerySchema, location="query")
    @blp.response(200, JobListSchema)
    def get(self, args):
        """List jobs, newest first."""
        try:
            records, cursor = store.list_jobs(redis_conn(), args["limit"], args.get("cursor"))
        except KeyError:
            abort(422, message="Unknown cursor.", errors={"cursor": ["Names no job."]})
        return {"jobs": [job_view(r) for r in records], "next_cursor": cursor}

    @blp.arguments(JobCreateSchema)
    @blp.response(202, JobSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, job):
        """Submit a training job; it is queued and trained by a worker."""
        conn = redis_conn()
        job_id = store.new_id()
        spec = job["spec"]
        record = store.create_job(conn, job_id, spec, job["arrays"], spec["training"]["epochs"])
        config = current_app.config
        queue().enqueue(
            store.TASK,
            job_id,
            job_id=job_id,
            job_timeout=config["JOB_TIMEOUT_SECONDS"],
            result_ttl=config["RESULT_TTL_SECONDS"],
            failure_ttl=config["FAILURE_TTL_SECONDS"],
        )
        location = url_for("jobs.Job", job_id=job_id)
        return job_view(record), 202, {"Location": location}


@blp.route("/<string:job_id>")
class Job(MethodView):
    @blp.response(200, JobSchema)
    def get(self, job_id):
        """Status and progress of one job."""
        return job_view(get_or_404(job_id))


@blp.route("/<string:job_id>/history")
class JobHistory(MethodView):
    @blp.response(200, HistorySchema)
    def get(self, job_id):
        """Per-epoch loss, val_loss and metrics recorded so far."""
        get_or_404(job_id)
        history = store.load_history(redis_conn(), job_id)
        return history or {"epoch": [], "loss": []}
