"""``python -m workers``: one rq worker on the training queue, connected to REDIS_URL;
``python -m workers webhooks``: one on the webhooks queue (``workers.webhooks``)."""

import logging
import os
import signal
import sys

from rq.serializers import JSONSerializer

import store
from store import queue

# Imported before the work loop so that the first job starts with NumPy and the engine loaded.
from . import tasks, webhooks  # noqa: F401
from .progress import REDIS_ERRORS
from .reaper import Heartbeat
from .settings import Settings, worker_identity
from .worker import TrainingWorker, raise_job_stopped


def main() -> None:
    if sys.argv[1:] == ["webhooks"]:
        webhooks.main()
        return
    if sys.argv[1:]:
        sys.exit(f"usage: python -m workers [webhooks]; not {' '.join(sys.argv[1:])!r}")
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    conn = store.connect()
    signal.signal(signal.SIGUSR1, raise_job_stopped)
    heartbeat = Heartbeat(store.connect(), worker_identity(), Settings.from_env())
    heartbeat.start()
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
