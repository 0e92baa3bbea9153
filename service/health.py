"""Liveness and readiness."""

import redis
from flask.views import MethodView

import store

from .endpoints import open_endpoint
from .errors import Blueprint
from .extensions import redis_conn
from .schemas import StatusSchema

blp = Blueprint("health", __name__, description="Liveness and readiness")


# Probes need no key: load balancers and orchestrators have none.
@open_endpoint
@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, StatusSchema)
    def get(self):
        """The process is up."""
        return {"status": "ok"}


@open_endpoint
@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, StatusSchema)
    @blp.alt_response(503, schema=StatusSchema)
    def get(self):
        """Redis answers and at least one worker is alive; 503 with the reason otherwise."""
        conn = redis_conn()
        try:
            conn.ping()
            workers = store.live_workers(conn)
        except redis.exceptions.RedisError as exc:
            return {"status": f"redis unreachable: {exc.__class__.__name__}", "redis": "down"}, 503
        if workers < 1:
            return {"status": "no worker is alive", "redis": "up", "workers": 0}, 503
        return {"status": "ready", "redis": "up", "workers": workers}
