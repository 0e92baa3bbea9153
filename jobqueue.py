"""The rq glue the API and the workers share: the queue and how a job id is enqueued.

rq sees only job ids, serialised as JSON; specs and arrays stay in the store. A job that is put
back on the queue (a worker died or shut down) gets a fresh rq job id, ``<job id>-<n>``, so rq's
records of the earlier attempt never collide with the new one.
"""

import os

from rq import Queue
from rq.serializers import JSONSerializer

import store

QUEUE_NAME = "training"
TASK = "workers.tasks.train_job"  # by dotted path: the API never imports the task code

JOB_TIMEOUT_SECONDS = int(os.environ.get("JOB_TIMEOUT_SECONDS", 24 * 3600))
RESULT_TTL_SECONDS = int(os.environ.get("RESULT_TTL_SECONDS", 7 * 24 * 3600))
FAILURE_TTL_SECONDS = int(os.environ.get("FAILURE_TTL_SECONDS", 7 * 24 * 3600))


def queue(conn) -> Queue:
    return Queue(QUEUE_NAME, connection=conn, serializer=JSONSerializer)


def enqueue(conn, job_id: str, at_front: bool = False, timeout: int | None = None) -> str:
    """Put ``job_id`` on the training queue and return the rq job id used.

    Args:
        at_front: a job coming back from an interrupted attempt goes ahead of new ones.
        timeout: rq's hard limit for one attempt, in seconds.
    """
    n = store.next_enqueue_number(conn, job_id)
    rq_id = f"{job_id}-{n}"
    store.update_job(conn, job_id, rq_job_id=rq_id)
    queue(conn).enqueue(
        TASK,
        job_id,
        job_id=rq_id,
        at_front=at_front,
        job_timeout=timeout or JOB_TIMEOUT_SECONDS,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
    )
    return rq_id
