"""The Redis client and model cache the app factory attaches to the app."""

from flask import Flask, current_app

import store

from .model_cache import ModelCache


def init_app(app: Flask) -> None:
    conn = store.connect(app.config["REDIS_URL"])
    app.extensions["redis"] = conn
    app.extensions["model_cache"] = ModelCache(app.config["MODEL_CACHE_BYTES"])


def redis_conn():
    return current_app.extensions["redis"]


def model_cache() -> ModelCache:
    return current_app.extensions["model_cache"]
