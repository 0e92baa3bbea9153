"""``GET /metrics``: the API's metrics in Prometheus' text format.

Under gunicorn every web process counts in prometheus_client's multiprocess mode: its values
live in files in ``PROMETHEUS_MULTIPROC_DIR`` (``service/gunicorn_conf.py`` provides and wipes
it), and a scrape, whichever process serves it, reads all of them through a registry built for
that scrape. Without that directory (the Flask test client, ``flask run``) the process's own
values are served. Queue depth and live workers are read from Redis at scrape time, as
rq-exporter does, so every API process reports the same numbers; the workers' own counters
(jobs finished, failed and canceled while running, durations, epochs) are served by each
worker on its own port: see ``workers/metrics.py``.

Labels are route templates (``/v1/jobs/<rid:job_id>``), never ids, so their number is bounded.
"""

import time

import redis
from flask import Flask, Response, current_app, g, request
from flask.views import MethodView
from flask_smorest import abort
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

import store
from store import queue

from .auth import current_tenant
from .errors import Blueprint
from .extensions import redis_conn

blp = Blueprint("metrics", __name__, description="Prometheus metrics")

# Whether prometheus_client chose multiprocess mode (PROMETHEUS_MULTIPROC_DIR was set when it
# was first imported); it decides for good then, so this asks it rather than the environment.
MULTIPROCESS = getattr(values.ValueClass, "_multiprocess", False)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"  # the route label of a request no route matched (404, 405)
# The rq queues whose depth is reported.
# The rq queues whose depth a scrape reports, and how to open each.
QUEUES = {
    queue.QUEUE_NAME: queue.training_queue,
    queue.WEBHOOK_QUEUE_NAME: queue.webhook_queue,
}

REQUESTS = Counter(
    "backprop_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=None,
)
REQUEST_SECONDS = Histogram(
    "backprop_http_request_duration_seconds",
    "Time from the start of a request's handling to its response (its headers, when streamed).",
    ["route", "method"],
    registry=None,
)
PREDICT_SECONDS = Histogram(
    "backprop_predict_duration_seconds",
    "Time of the forward pass of a prediction, by API (v1 predict, v2 infer).",
    ["api"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)
JOBS_SUBMITTED = Counter(
    "backprop_jobs_submitted_total", "Jobs accepted and queued (202).", registry=None
)
# Workers count the jobs they stop (stage="started"): see workers/metrics.py.
JOBS_CANCELED = Counter(
    "backprop_jobs_canceled_total",
    "Jobs canceled, by the stage they were in.",
    ["stage"],
    registry=None,
)
LOCAL_METRICS = (REQUESTS, REQUEST_SECONDS, PREDICT_SECONDS, JOBS_SUBMITTED, JOBS_CANCELED)


class RedisCollector:
    """Gauges read from Redis when scraped: the depth of each queue and the live workers."""

    def __init__(self, conn: redis.Redis):
        self.conn = conn

    def collect(self):
        up = GaugeMetricFamily("backprop_redis_up", "Whether Redis answered this scrape.")
        depth = GaugeMetricFamily(
            "backprop_queue_depth", "Jobs waiting in an rq queue.", labels=["queue"]
        )
        try:
            for name, open_queue in QUEUES.items():
                depth.add_metric([name], open_queue(self.conn).count)
            alive = store.live_workers(self.conn)
        except redis.exceptions.RedisError:
            up.add_metric([], 0)
            yield up  # the rest of the scrape is still worth having
            return
        up.add_metric([], 1)
        yield up
        yield depth
        yield GaugeMetricFamily(
            "backprop_workers_alive", "Workers whose heartbeat has not expired.", value=alive
        )


def registry(conn: redis.Redis) -> CollectorRegistry:
    """A registry for one scrape: every process's values (or this one's), and Redis's."""
    scrape = CollectorRegistry()
    if MULTIPROCESS:
        MultiProcessCollector(scrape)
    else:
        for metric in LOCAL_METRICS:
            scrape.register(metric)
    scrape.register(RedisCollector(conn))
    return scrape


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.response(200, description="Prometheus text format (version 0.0.4).")
    @blp.doc(responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    @blp.alt_response(403, description="API keys are on and the key is not an admin's.")
    def get(self):
        """The API's metrics, for Prometheus; with API keys on, for admin keys only."""
        if current_app.extensions["api_keys"] and not current_tenant().admin:
            abort(403, message="Metrics are for admin keys (ADMIN_TENANTS).")
        return Response(generate_latest(registry(redis_conn())), mimetype=CONTENT_TYPE_LATEST)


def route_label() -> str:
    rule = request.url_rule
    return UNMATCHED if rule is None else rule.rule


def init_app(app: Flask) -> None:
    """Time and count every request; register this before the other request hooks, so that
    their refusals (413, 429, 401, ...) are counted too."""

    @app.before_request
    def start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def count_request(response: Response) -> Response:
        route = route_label()
        method = request.method if request.method in METHODS else "OTHER"
        REQUESTS.labels(route, method, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            REQUEST_SECONDS.labels(route, method).observe(time.perf_counter() - started)
        return response
