"""The rq queues the API and the workers share, and how an id is enqueued.

rq sees only ids, serialised as JSON; specs and arrays stay in the store. A job that is put
back on the queue (a worker died or shut down) gets a fresh rq job id, ``<job id>-<n>``, so rq's
records of the earlier attempt never collide with the new one.

Webhook deliveries have a queue of their own, with their own workers: a delivery never waits
behind hours of training, and a slow receiver never holds a training worker.
"""

import redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from .config import SharedConfig, WebhookConfig
from .jobs import JobRecord, mark_queued, update_job
from .keys import job_key

QUEUE_NAME = "training"
TASK = "workers.tasks.train_job"  # by dotted path: the API never imports the task code

# rq's hard limit for one attempt: the job's own runtime cap, which the worker enforces at
# epoch boundaries, plus this margin.
TIMEOUT_MARGIN_SECONDS = 600
WEBHOOK_QUEUE_NAME = "webhooks"
DELIVER_TASK = "workers.webhooks.deliver"
# rq's hard limit for one delivery attempt, past the attempt's own socket timeouts (one to
# connect, one per read of the answer's head).
DELIVERY_TIMEOUT_MARGIN_SECONDS = 30
# A delivery whose worker died mid-attempt is found by rq's registry cleanup (a minute or more
# later) and queued again this many times; its backoff after failed POSTs is the task's own.
ABANDONED_DELIVERY_RETRIES = 3
_SHARED = SharedConfig.from_env()
RESULT_TTL_SECONDS = _SHARED.result_ttl_seconds
FAILURE_TTL_SECONDS = _SHARED.failure_ttl_seconds


def training_queue(conn) -> Queue:
    return Queue(QUEUE_NAME, connection=conn, serializer=JSONSerializer)


def dequeued_job_ids(conn) -> dict[str, str]:
    """Attempts a worker has taken off the training queue but not started yet (rq's
    intermediate queue, which rq empties as each starts): ``{rq job id: job id}``."""
    rq_ids = conn.lrange(training_queue(conn).intermediate_queue_key, 0, -1)
    return {rq_id.decode(): job_id_of(rq_id.decode()) for rq_id in rq_ids}


def job_id_of(rq_job_id: str) -> str:
    """The job an attempt's rq id, ``<job id>-<n>``, belongs to."""
    return rq_job_id.rsplit("-", 1)[0]


def next_enqueue_number(conn: redis.Redis, job_id: str) -> int:
    """1 for the first enqueue of a job, then 2, 3, ... for each requeue."""
    return int(conn.hincrby(job_key(job_id), "enqueues", 1))


def enqueue(conn, record: JobRecord, at_front: bool = False) -> str:
    """Put the stored job ``record`` on the training queue and return the rq job id used.

    Args:
        record: the job's stored record (its id and runtime cap are read from it).
        at_front: a job coming back from an interrupted attempt goes ahead of new ones.
    """
    job_id = record["id"]
    timeout = int(record["max_runtime_seconds"]) + TIMEOUT_MARGIN_SECONDS
    n = next_enqueue_number(conn, job_id)
    rq_id = f"{job_id}-{n}"
    update_job(conn, job_id, rq_job_id=rq_id)
    training_queue(conn).enqueue(
        TASK,
        job_id,
        job_id=rq_id,
        at_front=at_front,
        job_timeout=timeout,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
    )
    return rq_id


def requeue(conn, record: JobRecord) -> str:
    """Put a job whose attempt was interrupted back in the queue, ahead of new jobs.

    The earlier attempt's entry, if rq still has it waiting, is taken out first, so the queue
    never holds the same job twice.
    """
    if record.get("rq_job_id"):
        training_queue(conn).remove(record["rq_job_id"])
    mark_queued(conn, record["id"])
    return enqueue(conn, record, at_front=True)


def webhook_queue(conn) -> Queue:
    return Queue(WEBHOOK_QUEUE_NAME, connection=conn, serializer=JSONSerializer)


def enqueue_delivery(conn, delivery_id: str, pipeline=None) -> None:
    """Put a webhook delivery on the webhooks queue; its rq job id is the delivery's id.

    Args:
        pipeline: a transaction of the caller's to enqueue in (executed by the caller).
    """
    timeout = 3 * WebhookConfig.from_env().timeout_seconds + DELIVERY_TIMEOUT_MARGIN_SECONDS
    webhook_queue(conn).enqueue_call(
        DELIVER_TASK,
        args=(delivery_id,),
        job_id=delivery_id,
        timeout=int(timeout),
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        retry=Retry(max=ABANDONED_DELIVERY_RETRIES),
        pipeline=pipeline,
    )
