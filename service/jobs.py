"""``/v1/jobs``: submit training jobs, follow them (events, long polling), read their history."""

import hashlib
import json
from typing import NoReturn

from flask import current_app, jsonify, request, url_for
from flask.views import MethodView
from flask_smorest import abort
from flask_smorest.error_handler import ErrorSchema

import store
from store import FINAL_STATUSES, JobRecord, JobStatus, job_view, search

from . import events, submission
from .auth import PUBLIC, current_tenant, owned_or_404
from .errors import Blueprint
from .exceptions import (
    IdempotencyKeyReused,
    IdempotentRequestInFlight,
    InvalidJob,
    ServiceError,
    TooManyActiveJobs,
)
from .extensions import limiter, redis_conn
from .logs import request_id
from .schemas import (
    DryRunSchema,
    EventsHeadersSchema,
    HistoryQuerySchema,
    HistorySchema,
    JobCreateSchema,
    JobListSchema,
    JobPatchSchema,
    JobQuerySchema,
    JobSchema,
    JobSearchQuerySchema,
    JobSpecSchema,
    SubmitHeadersSchema,
    SubmitQuerySchema,
)

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Training jobs")


def get_or_404(job_id: str) -> JobRecord:
    """The job's record; 404 when there is none or another tenant owns it."""
    return owned_or_404(store.get_job(redis_conn(), job_id), "job", job_id)


@blp.route("")
class Jobs(MethodView):
    @blp.arguments(JobSearchQuerySchema, location="query")
    @blp.response(200, JobListSchema)
    @blp.alt_response(
        422, schema=ErrorSchema, description="A bad limit, filter or cursor, or an unknown cursor."
    )
    def get(self, args):
        """List or search your jobs (an admin: everyone's), newest first by default.

        Filters combine (all must hold). A page costs Redis work bounded by ``limit``, not by
        your number of jobs; with selective filters a page may hold fewer than ``limit`` jobs
        and still a ``next_cursor``: follow it until it is null.
        """
        tenant = current_tenant()
        query = search.Query(
            status=args.get("status"),
            tags=tuple(args.get("tag") or ()),
            name=args.get("name"),
            dataset_id=args.get("dataset_id"),
            sweep_id=args.get("sweep_id"),
            created_after=_seconds(args.get("created_after")),
            created_before=_seconds(args.get("created_before")),
            sort=args["sort"],
        )
        try:
            records, cursor = search.search(
                redis_conn(),
                None if tenant.admin else tenant.name,
                query,
                args["limit"],
                args.get("cursor"),
            )
        except KeyError:
            unknown_cursor("job")
        return {"jobs": [job_view(r) for r in records], "next_cursor": cursor}

    # On top of the default limit, which GET /v1/jobs shares.
    @limiter.limit(lambda: current_app.config["RATE_LIMIT_SUBMIT"], override_defaults=False)
    @blp.arguments(JobCreateSchema)
    @blp.arguments(SubmitQuerySchema, location="query")
    @blp.arguments(SubmitHeadersSchema, location="headers")
    @blp.response(202, JobSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(200, schema=DryRunSchema, description="dry_run=true: the estimate only.")
    @blp.alt_response(409, description="The Idempotency-Key was used with another body.")
    @blp.alt_response(429, description="Too many requests, or too many active jobs.")
    def post(self, job, query, headers):
        """Submit a training job; it is queued and trained by a worker.

        ``dry_run=true`` validates the job and returns its cost estimate without queueing it.
        An ``Idempotency-Key`` header makes retries safe: the same key with the same body
        returns the same job for 24 hours; with another body it answers 409.
        """
        config = current_app.config
        conn = redis_conn()
        tenant = current_tenant()
        try:
            plan = submission.plan(conn, job, tenant, config)
            if query["dry_run"]:
                # A Response of its own: flask-smorest would dump it with the 202 JobSchema.
                return jsonify(DryRunSchema().dump(submission.dry_run(plan, config)))
            key = headers.get("idempotency_key")
            idempotency = None if key is None else (key, body_hash())
            record = submission.submit(
                conn, plan, tenant.name, config["MAX_ACTIVE_JOBS"], idempotency, request_id()
            )
        except ServiceError as exc:
            # With field errors, the error handler words the message from the first of them.
            refuse(exc, None if exc.errors else exc.message)
        return created(record)


def _seconds(when) -> float | None:
    return None if when is None else when.timestamp()


def unknown_cursor(kind: str) -> NoReturn:
    """422 naming the cursor: well-formed, but the last page named none of the caller's
    ``kind`` records (``schemas.page_cursor``)."""
    abort(422, message="Unknown cursor.", errors={"cursor": [f"Names no {kind}."]})


# How the API answers each refusal of a submission: status and headers.
REFUSALS = {
    InvalidJob: (422, None),
    IdempotencyKeyReused: (409, None),
    IdempotentRequestInFlight: (409, {"Retry-After": "1"}),
    TooManyActiveJobs: (429, {"Retry-After": "30"}),
}


def refuse(exc: ServiceError, message: str | None) -> NoReturn:
    """Answer a refused submission (a job's or a sweep's) as ``REFUSALS`` says for its type."""
    status, headers = REFUSALS[type(exc)]
    abort(status, message=message, errors=exc.errors, headers=headers)


def body_hash() -> str:
    """The request body's JSON, canonicalised, hashed: what an idempotency key is bound to."""
    canonical = json.dumps(request.get_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def created(record: JobRecord):
    return job_view(record), 202, {"Location": url_for("jobs.Job", job_id=record["id"])}


@blp.route("/<rid:job_id>")
class Job(MethodView):
    @blp.arguments(JobQuerySchema, location="query")
    @blp.response(200, JobSchema)
    @blp.alt_response(503, schema=ErrorSchema, description=events.FULL)
    def get(self, args, job_id):
        """Status and progress of one job; with ``wait``, once it has ended (long polling)."""
        record = get_or_404(job_id)
        if args.get("wait") and record["status"] not in FINAL_STATUSES:
            events.wait_for_end(job_id, args["wait"])
            record = get_or_404(job_id)
        return job_view(record)

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
        ttl = current_app.config["DATA_TTL_SECONDS"]
        if submission.cancel(conn, job_id, record.get("tenant", PUBLIC), ttl):
            return job_view(store.get_job(conn, job_id))
        return job_view(store.get_job(conn, job_id)), 202

    @blp.arguments(JobPatchSchema)
    @blp.response(200, JobSchema)
    def patch(self, changes, job_id):
        """Rename, retag or change the metadata of a job; null clears a field."""
        get_or_404(job_id)
        conn = redis_conn()
        if changes and not search.relabel(conn, job_id, changes):
            abort(404, message=f"No job {job_id}.")
        return job_view(store.get_job(conn, job_id))


@blp.route("/<rid:job_id>/spec")
class JobSpec(MethodView):
    @blp.response(200, JobSpecSchema)
    def get(self, job_id):
        """The job as submitted, normalised (defaults filled in): network, training,
        preprocessing, targets, initial_model_id, name, tags and metadata. Not its data, nor its
        initial_weights arrays (``has_initial_weights`` says whether it had any)."""
        record = get_or_404(job_id)
        spec = store.load_spec(redis_conn(), job_id)
        body = {k: v for k, v in spec.items() if k != "initial_weights"}
        body["has_initial_weights"] = "initial_weights" in spec
        view = job_view(record)
        for field in ("dataset_id", "name", "tags", "metadata"):
            body[field] = view[field]
        return body


@blp.route("/<rid:job_id>/events")
class JobEvents(MethodView):
    @blp.arguments(EventsHeadersSchema, location="headers")
    @blp.response(200, description=events.STREAM_DOC["description"])
    @blp.doc(responses={200: events.STREAM_DOC})
    @blp.alt_response(503, schema=ErrorSchema, description=events.FULL)
    def get(self, headers, job_id):
        """Follow a job live: its status, history and progress as Server-Sent Events."""
        get_or_404(job_id)
        return events.stream(job_id, headers["last_event_id"])


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
