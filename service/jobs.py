"""``/v1/jobs``: submit training jobs, follow them, read their history."""

import hashlib
import json

from flask import current_app, jsonify, request, url_for
from flask.views import MethodView
from flask_smorest import abort

import jobqueue
import store
from backprop import SpecError
from store import JobStatus

from . import budget
from .auth import PUBLIC, current_tenant
from .errors import Blueprint
from .extensions import limiter, redis_conn
from .schemas import (
    DryRunSchema,
    HistoryQuerySchema,
    HistorySchema,
    JobCreateSchema,
    JobListQuerySchema,
    JobListSchema,
    JobSchema,
    SubmitQuerySchema,
    check_job_data,
)

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
        "dataset_id": record.get("dataset_id"),
        "cancel_requested": bool(record.get("cancel_requested")),
        "max_runtime_seconds": record.get("max_runtime_seconds"),
    }


def get_or_404(job_id: str) -> dict:
    """The job's record; 404 when there is none or another tenant owns it."""
    record = store.get_job(redis_conn(), job_id)
    if record is None or not current_tenant().owns(record):
        abort(404, message=f"No job {job_id}.")
    return record


@blp.route("")
class Jobs(MethodView):
    @blp.arguments(JobListQuerySchema, location="query")
    @blp.response(200, JobListSchema)
    def get(self, args):
        """List your jobs (an admin: everyone's), newest first."""
        tenant = current_tenant()
        try:
            records, cursor = store.list_jobs(
                redis_conn(),
                args["limit"],
                args.get("cursor"),
                None if tenant.admin else tenant.name,
            )
        except KeyError:
            abort(422, message="Unknown cursor.", errors={"cursor": ["Names no job."]})
        return {"jobs": [job_view(r) for r in records], "next_cursor": cursor}

    # On top of the default limit, which GET /v1/jobs shares.
    @limiter.limit(lambda: current_app.config["RATE_LIMIT_SUBMIT"], override_defaults=False)
    @blp.arguments(JobCreateSchema)
    @blp.arguments(SubmitQuerySchema, location="query")
    @blp.response(202, JobSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(200, schema=DryRunSchema, description="dry_run=true: the estimate only.")
    @blp.alt_response(409, description="The Idempotency-Key was used with another body.")
    @blp.alt_response(429, description="Too many requests, or too many active jobs.")
    def post(self, job, query):
        """Submit a training job; it is queued and trained by a worker.

        ``dry_run=true`` validates the job and returns its cost estimate without queueing it.
        An ``Idempotency-Key`` header makes retries safe: the same key with the same body
        returns the same job for 24 hours; with another body it answers 409.
        """
        config = current_app.config
        spec, arrays, shape = job["spec"], job["arrays"], job["shape"]
        dataset_id = job["dataset_id"]
        if dataset_id is not None:
            shape = dataset_shape(dataset_id, spec, arrays)
        cost = budget.estimate(spec, shape["rows"], shape["columns"])
        over = budget.violations(cost, config)
        if over:
            abort(422, errors=over)
        max_runtime = job["max_runtime_seconds"] or config["DEFAULT_MAX_RUNTIME_SECONDS"]
        if max_runtime > config["MAX_RUNTIME_SECONDS"]:
            limit = config["MAX_RUNTIME_SECONDS"]
            abort(422, errors={"training.max_runtime_seconds": [f"Must be at most {limit}."]})
        if query["dry_run"]:
            names = ("MAX_PARAMETERS", "MAX_TRAINING_FLOPS", "MAX_TRAINING_MEMORY_BYTES")
            limits = {name.lower(): config[name] for name in names}
            # A Response of its own: flask-smorest would dump a dict with the 202 JobSchema.
            return jsonify(DryRunSchema().dump({"valid": True, "estimate": cost, "limits": limits}))

        conn = redis_conn()
        tenant = current_tenant().name
        job_id = store.new_id()
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            if not 1 <= len(key) <= 200:
                abort(422, errors={"Idempotency-Key": ["Must be 1 to 200 characters."]})
            digest = body_hash()
            prior = store.remember_idempotent(conn, tenant, key, digest, job_id)
            if prior is not None:
                if prior["hash"] != digest:
                    abort(409, message="This Idempotency-Key was used with a different body.")
                record = store.get_job(conn, prior["job_id"])
                if record is None:
                    abort(
                        409,
                        message="A request with this Idempotency-Key is still being handled.",
                        headers={"Retry-After": "1"},
                    )
                return created(record)
        cap = config["MAX_ACTIVE_JOBS"]
        if not store.reserve_job_slot(conn, tenant, job_id, cap):
            abort(
                429,
                message=f"Too many active jobs: at most {cap} queued or started at once.",
                headers={"Retry-After": "30"},
            )
        epochs = spec["training"]["epochs"]
        try:
            record = store.create_job(
                conn, job_id, spec, arrays, epochs, max_runtime, tenant, dataset_id=dataset_id
            )
            jobqueue.enqueue(conn, record)
        except BaseException:
            store.release_job_slot(conn, tenant, job_id)
            raise
        if key is not None:
            store.confirm_idempotent(conn, tenant, key)
        return created(record)


def dataset_shape(dataset_id: str, spec: dict, arrays: dict) -> dict:
    """The shape of the caller's dataset, checked against the job; 422 naming the field."""
    record = store.get_dataset(redis_conn(), dataset_id)
    if record is None or not current_tenant().owns(record):
        abort(422, errors={"dataset_id": [f"No dataset {dataset_id}."]})
    try:
        check_job_data(spec, record, arrays, "dataset_id")
    except SpecError as exc:
        abort(422, errors={exc.path: [exc.message]})
    return record


def body_hash() -> str:
    """The request body's JSON, canonicalised, hashed: what an idempotency key is bound to."""
    canonical = json.dumps(request.get_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def created(record: dict):
    return job_view(record), 202, {"Location": url_for("jobs.Job", job_id=record["id"])}


@blp.route("/<rid:job_id>")
class Job(MethodView):
    @blp.response(200, JobSchema)
    def get(self, job_id):
        """Status and progress of one job."""
        return job_view(get_or_404(job_id))

    @blp.response(200, JobSchema)
    @blp.alt_response(202, schema=JobSchema, description="Started: it stops at its next epoch.")
    @blp.alt_response(409, description="The job has already finished or failed.")
    def delete(self, job_id):
        """Cancel a job: a queued one at once, a started one at its next epoch boundary."""
        conn = redis_conn()
        record = get_or_404(job_id)
        if record["status"] in (JobStatus.FINISHED, JobStatus.FAILED):
            abort(409, message=f"Job {job_id} has already {record['status']}.")
        if record["status"] == JobStatus.CANCELED:
            return job_view(record)
        if store.cancel_if_queued(conn, job_id, store.now_iso(), record.get("tenant", PUBLIC)):
            store.tidy_ended_job(conn, job_id, current_app.config["DATA_TTL_SECONDS"])
            return job_view(store.get_job(conn, job_id))
        store.request_cancel(conn, job_id)
        return job_view(store.get_job(conn, job_id)), 202


@blp.route("/<rid:job_id>/history")
class JobHistory(MethodView):
    @blp.arguments(HistoryQuerySchema, location="query")
    @blp.response(
        200,
        HistorySchema,
        headers={
            "Link": {
                "description": 'rel="next": the next page, if any.',
                "schema": {"type": "string"},
            }
        },
    )
    def get(self, args, job_id):
        """Per-epoch loss, val_loss and metrics recorded so far; ``offset``/``limit`` page it."""
        get_or_404(job_id)
        offset, limit = args["offset"], args["limit"]
        # One entry more than asked for tells whether there is a next page.
        history = store.load_history(redis_conn(), job_id, offset, limit + 1)
        more = any(len(values) > limit for values in history.values())
        history = {column: values[:limit] for column, values in history.items()}
        headers = {}
        if more and limit:
            url = url_for("jobs.JobHistory", job_id=job_id, offset=offset + limit, limit=limit)
            headers["Link"] = f'<{url}>; rel="next"'
        return history or {"epoch": [], "loss": []}, 200, headers
