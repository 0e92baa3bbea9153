"""``python -m workers``: one rq worker on the training queue, connected to REDIS_URL."""

import logging
import os

from rq import Worker
from rq.serializers import JSONSerializer

import store

# Imported before the work loop so that each forked work horse starts with NumPy and the
# engine already loaded.
from . import tasks  # noqa: F401


def main() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    worker = Worker([store.QUEUE_NAME], connection=store.connect(), serializer=JSONSerializer)
    worker.work(logging_level=level)


if __name__ == "__main__":
    main()
