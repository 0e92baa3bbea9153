"""The rq queue the API and the workers share, and how a job id is enqueued.

rq sees only job ids, serialised as JSON; specs and arrays stay in the store. A job that is put
back on the queue (a worker died or shut down) gets a fresh rq job id, ``<job id>-<n>``, so rq's
records of the earlier attempt never collide with the new one.
"""

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from .config import SharedConfig
from .jobs import JobRecord, mark_queued, update_job
from .keys import job_key

QUEUE_NAME = "training"
TASK = "workers.tasks.train_job"  # by dotted path: the API never imports the task code

# rq's hard limit for one attempt: the job's own runtime cap, which the worker enforces at
# epoch boundaries, plus this margin.
TIMEOUT_MARGIN_SECONDS = 600
_SHARED = SharedConfig.from_env()
RESULT_TTL_SECONDS = _SHARED.result_ttl_seconds
FAILURE_TTL_SECONDS = _SHARED.failure_ttl_seconds


def training_queue(conn) -> Queue:
    return Queue(QUEUE_NAME, connection=conn, serializer=JSONSerializer)


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
