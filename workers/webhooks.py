"""The webhook worker: ``python -m workers webhooks`` sends the deliveries that jobs' status
changes queued (see store/webhooks.py), on a queue of their own.

One call of ``deliver`` is one attempt: a POST of the delivery's body, signed with the tenant's
current secret. A 2xx answer delivers it. Anything else (another status, no answer in time, a
refused address) is recorded, and the task returns rq's ``Retry`` with the backoff of
``WebhookConfig.retry_intervals``, until the last attempt marks the delivery failed. The retries
wait in rq's scheduled registry, so the worker runs rq's scheduler, in the form of
``RetryingScheduler``, which outlasts Redis restarts and failovers.

The host is resolved and checked again at each attempt (DNS may have changed since the job was
submitted), and the connection goes to the address that was checked, so a second lookup cannot
swap in another. Redirects are not followed: a 3xx is a failed attempt.
"""

import http.client
import logging
import os
import socket
import ssl
import time

from rq import Retry, SimpleWorker, get_current_job
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

import store
from store import logs, queue, webhooks
from store.config import WebhookConfig
from store.connection import UNAVAILABLE
from store.webhooks import Attempt, Delivery, DeliveryStatus

from . import metrics
from .settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = "backprop-service-webhooks/1"
ERROR_CHARS = 300  # of an error's text kept in the attempt's record
# Seconds before the scheduler's loop starts again after a Redis error. Each try of Redis
# already backs off inside redis-py (10 retries, a few seconds in all) before it raises.
SCHEDULER_RESTART_WAIT = 2


def deliver(delivery_id: str) -> dict | Retry:
    """Make one attempt at delivery ``delivery_id``; a ``Retry`` asks rq for another."""
    conn = get_current_job().connection
    config = WebhookConfig.from_env()
    delivery = webhooks.get_delivery(conn, delivery_id)
    if delivery is None or delivery["status"] != DeliveryStatus.PENDING:
        return {"skipped": "no such delivery" if delivery is None else delivery["status"]}
    number = delivery["attempts"] + 1
    started = time.monotonic()
    secret = webhooks.current_secret(conn, delivery["tenant"])
    if secret is None:
        status_code, error = None, "the tenant has no webhook secret"
    else:
        status_code, error = post(delivery, secret, config)
    attempt: Attempt = {
        "attempt": number,
        "at": store.now_iso(),
        "status_code": status_code,
        "error": error,
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }
    intervals = config.retry_intervals
    if status_code is not None and 200 <= status_code < 300:
        status = DeliveryStatus.DELIVERED
    elif number > len(intervals):
        status = DeliveryStatus.FAILED
    else:
        status = DeliveryStatus.PENDING
    webhooks.record_attempt(conn, delivery_id, attempt, status)
    count_delivery_attempt(outcome(status))
    if status is DeliveryStatus.PENDING:
        log.info(
            "delivery %s (job %s, %s) attempt %d: %s; retrying in %d s",
            delivery_id,
            delivery["job_id"],
            delivery["event"],
            number,
            error or status_code,
            intervals[number - 1],
        )
        return Retry(max=len(intervals), interval=list(intervals))
    log.info(
        "delivery %s (job %s, %s) %s after %d attempt(s)",
        delivery_id,
        delivery["job_id"],
        delivery["event"],
        status,
        number,
    )
    return {"status": str(status), "attempts": number}


def outcome(status: DeliveryStatus) -> str:
    """An attempt's outcome: delivered, retrying (it failed; another follows) or failed."""
    return "retrying" if status is DeliveryStatus.PENDING else str(status)


def count_delivery_attempt(outcome: str) -> None:
    """The one place that counts delivery attempts by ``outcome`` (``outcome()``'s words), for
    the "webhook deliveries by outcome" metric; every attempt passes here once."""
    metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()


def post(delivery: Delivery, secret: str, config: WebhookConfig) -> tuple[int | None, str | None]:
    """POST the delivery's body, signed; ``(status code, None)``, or ``(None, error)`` when no
    answer came."""
    body = delivery["body"].encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Delivery-Id": delivery["id"],
        "X-Webhook-Event": delivery["event"],
        "X-Signature": webhooks.signature_header(secret, int(time.time()), body),
    }
    connection = None
    try:
        where = webhooks.target(delivery["url"])
        address = webhooks.public_address(where.host, where.port, config.allow_private)
        connection = pinned_connection(where, address, config.timeout_seconds)
        connection.request("POST", where.path, body, headers)
        return connection.getresponse().status, None
    except (OSError, ValueError, http.client.HTTPException, JobTimeoutException) as exc:
        # OSError: refused, reset, timed out, TLS; ValueError: a refused address
        # (RefusedAddress); JobTimeoutException: rq's backstop for a receiver that trickles.
        return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    finally:
        if connection is not None:
            connection.close()


def pinned_connection(
    where: webhooks.Target, address: str, timeout: float
) -> http.client.HTTPConnection:
    """An HTTP(S) connection to ``where`` that connects to ``address`` (checked) rather than
    resolving the host again. TLS still verifies the certificate against the host's name."""
    if where.https:
        context = ssl.create_default_context()
        connection = http.client.HTTPSConnection(
            where.host, where.port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(where.host, where.port, timeout=timeout)

    def connect(host_port, timeout, source_address):
        return socket.create_connection((address, host_port[1]), timeout, source_address)

    # http.client opens its socket through this attribute, for HTTP and HTTPS alike.
    connection._create_connection = connect
    return connection


class RetryingScheduler(RQScheduler):
    """rq's scheduler, whose loop starts again when Redis is unavailable, rather than ending.

    rq's loop (``RQScheduler.work``) ends at the first Redis error, as in a restart or a
    Sentinel failover, and so does the process the worker forked for it. The worker starts it
    again only in its maintenance pass, every 10 minutes at best and only between BLPOPs of up
    to ``worker_ttl - 15`` s, so retries due meanwhile waited 10 to 15 minutes. This starts rq's
    loop again (it registers the scheduler again and refreshes or retakes its locks) until Redis
    answers or the worker stops it.
    """

    stopping = False

    def request_stop(self, signum=None, frame=None) -> None:
        self.stopping = True
        super().request_stop(signum, frame)

    def work(self) -> None:
        while True:
            try:
                return super().work()
            except UNAVAILABLE as exc:
                if self.stopping:
                    raise  # as rq's would; its locks expire by themselves
                log.warning(
                    "rq's scheduler lost Redis (%s); restarting it in %d s",
                    exc,
                    SCHEDULER_RESTART_WAIT,
                )
                time.sleep(SCHEDULER_RESTART_WAIT)


def main() -> None:
    """Work on the webhooks queue until SIGTERM, running rq's scheduler for the retries."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logs.configure(level)
    metrics.serve_from(Settings.from_env())
    names = [queue.WEBHOOK_QUEUE_NAME]
    conn = store.connect()
    worker = SimpleWorker(names, connection=conn, serializer=JSONSerializer)
    # What work(with_scheduler=True) does, with our scheduler in place of rq's: the worker still
    # starts it again if it ends otherwise, takes the queue's lock over from another worker's
    # scheduler that died, and stops it when the worker stops (all through worker.scheduler).
    worker.scheduler = RetryingScheduler(
        names, connection=conn, serializer=JSONSerializer, logging_level=level
    )
    worker.scheduler.acquire_locks(auto_start=True)
    try:
        worker.work(logging_level=level)
    finally:
        # work() stops the scheduler when its loop ends, but not when it fails before the loop
        # (its bootstrap: Redis gone, say); rq's scheduler process is no daemon, so one left
        # running would keep this process from exiting, its lock held and its queue unserved.
        # A scheduler that ended by itself (say, on a refused command) left its lock to expire:
        # release it too (release_locks only deletes a lock this scheduler still owns).
        scheduler = worker.scheduler
        if scheduler is not None:
            if scheduler._process is not None and scheduler._process.is_alive():
                worker.stop_scheduler()
            scheduler.release_locks()
