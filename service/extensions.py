"""The Redis client and rq queue the app factory attaches to the app."""

from flask import Flask, current_app
from rq import Queue
from rq.serializers import JSONSerializer

import store

from .model_cache import ModelCache


def init_app(app: Flask) -> None:
    conn = store.connect(app.config["REDIS_URL"])
    app.extensions["redis"] = conn
    # JSON, not pickle: the only argument is the job id.
    app.extensions["queue"] = Queue(store.QUEUE_NAME, connection=conn, serializer=JSONSerializer)
    app.extensions["model_cache"] = ModelCache(app.config["MODEL_CACHE_BYTES"])


def redis_conn():
    return current_app.extensions["redis"]


def queue() -> Queue:
    return current_app.extensions["queue"]


def model_cache() -> ModelCache:
    return current_app.extensions["model_cache"]
