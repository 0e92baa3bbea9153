"""``/v1/sweeps``: hyperparameter sweeps over a base job (the logic is ``service.sweeping``)."""

from flask import current_app, jsonify, url_for
from flask.views import MethodView
from flask_smorest import abort
from flask_smorest.error_handler import ErrorSchema

from store import sweeps

from . import sweeping
from .auth import current_tenant, owned_or_404
from .errors import Blueprint
from .exceptions import ServiceError
from .extensions import limiter, redis_conn
from .jobs import refuse, unknown_cursor
from .logs import request_id
from .schemas import SubmitQuerySchema
from .sweep_schemas import (
    SweepCreateSchema,
    SweepDryRunSchema,
    SweepListQuerySchema,
    SweepListSchema,
    SweepSchema,
)

blp = Blueprint("sweeps", __name__, url_prefix="/v1/sweeps", description="Hyperparameter sweeps")


def get_or_404(sweep_id: str) -> sweeps.SweepRecord:
    """The sweep's record; 404 when there is none or another tenant owns it."""
    return owned_or_404(sweeps.get_sweep(redis_conn(), sweep_id), "sweep", sweep_id)


def shown(record: sweeps.SweepRecord) -> dict:
    conn = redis_conn()
    ids = sweeps.trial_ids(conn, record["id"])
    return sweeping.view(record, sweeps.load_trials(conn, ids))


@blp.route("")
class Sweeps(MethodView):
    @blp.arguments(SweepListQuerySchema, location="query")
    @blp.response(200, SweepListSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="A bad limit or cursor.")
    def get(self, args):
        """List your sweeps, newest first (without their trials: GET one for those)."""
        try:
            records, cursor = sweeps.list_sweeps(
                redis_conn(), current_tenant().name, args["limit"], args.get("cursor")
            )
        except KeyError:
            unknown_cursor("sweep")
        return {"sweeps": records, "next_cursor": cursor}

    @limiter.limit(lambda: current_app.config["RATE_LIMIT_SUBMIT"], override_defaults=False)
    @blp.arguments(SweepCreateSchema)
    @blp.arguments(SubmitQuerySchema, location="query")
    @blp.response(202, SweepSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(200, schema=SweepDryRunSchema, description="dry_run=true: the estimate.")
    @blp.alt_response(429, description="Too many requests, or too few free active-job slots.")
    def post(self, sweep, query):
        """Start a sweep: every trial is checked, then ``parallel`` of them are queued at once.

        ``dry_run=true`` checks every trial and returns their summed estimate, queueing nothing.
        """
        config = current_app.config
        conn = redis_conn()
        tenant = current_tenant()
        try:
            planned = sweeping.plan(conn, sweep, tenant, config)
            if query["dry_run"]:
                # A Response of its own: flask-smorest would dump it with the 202 SweepSchema.
                return jsonify(SweepDryRunSchema().dump(sweeping.dry_run(planned, config)))
            record = sweeping.submit(
                conn, planned, tenant.name, config["MAX_ACTIVE_JOBS"], request_id()
            )
        except ServiceError as exc:
            refuse(exc, exc.message)  # it names the trial at fault
        location = url_for("sweeps.Sweep", sweep_id=record["id"])
        return shown(record), 202, {"Location": location}


@blp.route("/<rid:sweep_id>")
class Sweep(MethodView):
    @blp.response(200, SweepSchema)
    def get(self, sweep_id):
        """A sweep: each trial's parameters, job, status and objective value, the best trial so
        far and the trials' counts by status."""
        return shown(get_or_404(sweep_id))

    @blp.response(200, SweepSchema)
    @blp.alt_response(202, schema=SweepSchema, description="Started trials stop later.")
    @blp.alt_response(409, description="Every trial has already ended.")
    def delete(self, sweep_id):
        """Cancel a sweep: waiting and queued trials at once, started ones at their next epoch."""
        record = get_or_404(sweep_id)
        if shown(record)["status"] == "finished":
            abort(409, message=f"Sweep {sweep_id} has already finished: every trial has ended.")
        conn = redis_conn()
        tenant = record["tenant"]
        stopping = sweeping.cancel(conn, sweep_id, tenant, current_app.config["DATA_TTL_SECONDS"])
        return shown(sweeps.get_sweep(conn, sweep_id)), 202 if stopping else 200
