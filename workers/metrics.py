"""A worker's metrics, served on its own port (``WORKER_METRICS_PORT``) for Prometheus.

Each worker serves its own, rather than pushing counters through Redis to the API's /metrics:
workers on other machines share nothing but Redis, so Prometheus' pull model fits, and a
worker's metrics (and its ``up``) stay visible while Redis is unreachable or full, exactly when
they matter; Redis holds no telemetry, and no write is added to a training worker's path. A
counter restarts at 0 with its worker, which ``rate()`` and ``increase()`` allow for. Sum over
the workers in PromQL: ``sum(rate(backprop_epochs_trained_total[1m]))``.

A worker is one process (rq's SimpleWorker), so these live in a registry of its own, not in
prometheus_client's multiprocess mode.
"""

import logging

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    start_http_server,
)

log = logging.getLogger(__name__)
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # this worker's CPU time and memory

JOBS_FINISHED = Counter(
    "backprop_jobs_finished_total",
    "Jobs that finished here, their model stored.",
    registry=REGISTRY,
)
JOBS_FAILED = Counter(
    "backprop_jobs_failed_total",
    "Jobs that failed here, by error.code (diverged, timeout, crashed, ...).",
    ["code"],
    registry=REGISTRY,
)
# The API counts the jobs canceled while queued (stage="queued"), a worker those it stopped.
JOBS_CANCELED = Counter(
    "backprop_jobs_canceled_total",
    "Jobs canceled, by the stage they were in.",
    ["stage"],
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "backprop_job_duration_seconds",
    "Training time of the jobs that ended here, over all their attempts, by final status.",
    ["status"],
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600),
    registry=REGISTRY,
)
EPOCHS = Counter(
    "backprop_epochs_trained_total",
    "Epochs trained (counted at each progress flush); its rate() is epochs per second.",
    registry=REGISTRY,
)
# Sent by the webhook deliveries; outcome is delivered, retried or failed.
WEBHOOK_DELIVERIES = Counter(
    "backprop_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)


def job_ended(status: str, error_code: str | None = None, seconds: float | None = None) -> None:
    """Count a job that ended here with ``status``; ``seconds`` is its training time, None
    when it never reached training (a spec or dataset refused when loading)."""
    if status == "finished":
        JOBS_FINISHED.inc()
    elif status == "failed":
        JOBS_FAILED.labels(code=error_code or "unknown").inc()
    elif status == "canceled":
        JOBS_CANCELED.labels(stage="started").inc()
    if seconds is not None:
        JOB_SECONDS.labels(status=status).observe(seconds)


def serve(port: int, host: str) -> None:
    """Serve these metrics at ``http://host:port/metrics`` from a daemon thread.

    Raises:
        OSError: the port cannot be bound.
    """
    start_http_server(port, addr=host, registry=REGISTRY)


def serve_from(settings) -> None:
    """Serve the metrics on ``settings.metrics_port``, if set (``workers.settings.Settings``);
    a port that cannot be bound is logged, and the worker works on: its work matters more."""
    if not settings.metrics_port:
        return
    try:
        serve(settings.metrics_port, settings.metrics_host)
    except OSError as exc:
        log.error("metrics not served on port %d: %s", settings.metrics_port, exc)
