"""``python -m workers``: one rq worker on the training queue, connected to REDIS_URL;
``python -m workers webhooks``: one on the webhooks queue (``workers.webhooks``)."""

import logging
import os
import re
import signal
import sys
import time

import redis
from rq.serializers import JSONSerializer

import store
from store import logs, migrations, queue

# Imported before the work loop so that the first job starts with NumPy and the engine loaded.
from . import metrics, tasks, webhooks  # noqa: F401
from .progress import REDIS_ERRORS
from .reaper import Heartbeat
from .settings import Settings, worker_identity
from .worker import TrainingWorker, raise_job_stopped

log = logging.getLogger(__name__)

# rq's lines name an attempt by its rq id, ``<job id>-<n>`` (see store.queue.enqueue), or by its
# description, ``workers.tasks.train_job('<job id>')``; the worker's own name is 32 hex digits
# too, so a bare id is not taken for a job's.
RQ_JOB = re.compile(r"\b([0-9a-f]{32})-\d+\b|\('([0-9a-f]{32})'\)")


class RqJobIds(logging.Filter):
    """Gives rq's own lines about an attempt (dequeued, Job OK, ...) the job's id, as ours
    have; rq logs some of them before the task starts and after it returns."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None and isinstance(record.args, tuple):
            for arg in record.args:
                match = RQ_JOB.search(str(arg))
                if match:
                    record.job_id = match.group(1) or match.group(2)
                    break
        return True


def migrate(conn) -> None:
    """Bring stored data to this release's formats (``store.migrations``) before the first job:
    once per Redis, by whichever worker starts first; the others go on at once.

    Here rather than in the API: a worker may start its first job a moment later, whereas
    gunicorn kills an API process that boots slower than its timeout, and this takes time in
    proportion to the jobs stored (about 1.3 s per 10,000).
    """
    started = time.monotonic()
    try:
        indexed = migrations.backfill_search(conn)
    except (redis.exceptions.RedisError, migrations.LockLost) as exc:  # training goes on
        log.warning("search index backfill stopped: %s; the next worker start runs it again", exc)
        return
    if indexed is not None:
        seconds = time.monotonic() - started
        log.info("search index backfill: %d jobs indexed in %.2f s", indexed, seconds)


def main() -> None:
    if sys.argv[1:] == ["webhooks"]:
        webhooks.main()
        return
    if sys.argv[1:]:
        sys.exit(f"usage: python -m workers [webhooks]; not {' '.join(sys.argv[1:])!r}")
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logs.configure(level)  # rq then adds no handler of its own: its lines go through ours
    logging.getLogger("rq.worker").addFilter(RqJobIds())
    settings = Settings.from_env()
    metrics.serve_from(settings)
    conn = store.connect()
    signal.signal(signal.SIGUSR1, raise_job_stopped)
    heartbeat = Heartbeat(store.connect(), worker_identity(), settings)
    heartbeat.start()
    migrate(conn)
    worker = TrainingWorker([queue.QUEUE_NAME], connection=conn, serializer=JSONSerializer)
    try:
        worker.work(logging_level=level)
    finally:
        heartbeat.stopping.set()
        try:
            store.worker_gone(conn, heartbeat.owner)
        except REDIS_ERRORS:
            pass  # the beat expires on its own


if __name__ == "__main__":
    main()
