"""The one JSON error body, ``{code, status, message, errors?}``, for every failure."""

import json
import logging
import math
import time
from http import HTTPStatus

import flask_smorest
import redis
from flask import Flask
from flask_limiter.errors import RateLimitExceeded
from flask_smorest import Api
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from store.connection import UNAVAILABLE

from .endpoints import open_endpoint
from .extensions import limiter

log = logging.getLogger(__name__)

# Space in a full Redis comes back when someone deletes data or raises maxmemory, not in seconds.
STORAGE_FULL_RETRY_AFTER_SECONDS = 30


def flatten(errors, prefix: str = "") -> dict:
    """``{"network": {"layers": {0: {"units": [msg]}}}}`` → ``{"network.layers.0.units": [msg]}``.

    webargs nests body errors under the location ``json``; that level is dropped.
    """
    if not isinstance(errors, dict):
        return {prefix or "body": errors if isinstance(errors, list) else [errors]}
    out = {}
    for key, value in errors.items():
        key = str(key)
        if not prefix and key in ("json", "query", "form", "files", "headers"):
            path = ""
        elif key == "_schema":
            path = prefix or "body"
        else:
            path = f"{prefix}.{key}" if prefix else key
        out.update(flatten(value, path))
    return out


class JsonParser(FlaskParser):
    """webargs' parser, with a 400 for every body ``json`` cannot read, not just bad syntax."""

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise  # webargs answers these itself
        except (RecursionError, ValueError) as exc:
            # Nested deeper than the recursion limit, or an integer past Python's digit limit.
            self._handle_invalid_json_error(exc, req)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, reading JSON bodies with ``JsonParser``."""

    ARGUMENTS_PARSER = JsonParser()


def error_body(code: int, status: str, message: str, errors: dict | None = None) -> dict:
    body = {"code": code, "status": status, "message": message}
    if errors:
        body["errors"] = errors
    return body


class ServiceApi(Api):
    """flask-smorest's Api with field-path error keys and a message on every error, and its
    OpenAPI document and documentation pages open to callers without a key."""

    @open_endpoint
    def _openapi_json(self):
        return super()._openapi_json()

    @open_endpoint
    def _openapi_redoc(self):
        return super()._openapi_redoc()

    @open_endpoint
    def _openapi_swagger_ui(self):
        return super()._openapi_swagger_ui()

    @open_endpoint
    def _openapi_rapidoc(self):
        return super()._openapi_rapidoc()

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        headers = data.get("headers") or {}
        errors = data.get("errors") or data.get("messages")
        errors = flatten(errors) if errors else None
        message = data.get("message")
        if message is None and errors:
            path, messages = next(iter(errors.items()))
            message = f"Invalid request: {path}: {' '.join(map(str, messages))}"
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            # RFC 9110: a 405 lists the methods the resource supports (werkzeug's HTML page did).
            headers = {**headers, "Allow": ", ".join(error.valid_methods)}
        headers = with_retry_after(error, headers)
        if error.code == 500:
            log.error("unhandled error", exc_info=getattr(error, "original_exception", None))
        body = error_body(error.code, error.name, message or error.description, errors)
        return body, error.code, headers


def with_retry_after(error: HTTPException, headers: dict) -> dict:
    """``headers``, plus Retry-After on the rate limiter's 429 when it has none: both /v1's
    error body and /v2's protocol error answer a 429 this way."""
    if not isinstance(error, RateLimitExceeded) or "Retry-After" in headers:
        return headers
    return {**headers, "Retry-After": str(retry_after_seconds())}


def retry_after_seconds() -> int:
    """Seconds until the rate-limit window that was hit resets (at least 1)."""
    current = limiter.current_limit
    if current is None:
        return 1
    return max(1, math.ceil(current.reset_at - time.time()))


# Redis errors that mean "not now" rather than a bug; every route answers them alike:
# unreachable or failing over (store.connection.UNAVAILABLE) is a 503, full a 507.
REDIS_FAILURES = (*UNAVAILABLE, redis.exceptions.OutOfMemoryError)


def redis_failure(exc: redis.exceptions.RedisError) -> tuple[HTTPStatus, str, dict]:
    """What a Redis failure means to a caller: status, message and headers. Each API
    protocol (/v1's error body here, /v2's in service.inference) renders it in its own shape.
    """
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        log.warning("redis is full: %s", exc)
        message = "Storage is full: Redis has reached its memory limit. Retry later."
        retry = STORAGE_FULL_RETRY_AFTER_SECONDS
        return HTTPStatus.INSUFFICIENT_STORAGE, message, {"Retry-After": str(retry)}
    log.warning("redis unavailable: %s", exc)
    message = f"Redis is unreachable or failing over; retry later ({exc.__class__.__name__})."
    return HTTPStatus.SERVICE_UNAVAILABLE, message, {"Retry-After": "5"}


def redis_failed(exc: redis.exceptions.RedisError):
    """503 while Redis cannot be reached, 507 while it is full: callers know to retry."""
    status, message, headers = redis_failure(exc)
    return error_body(status, status.phrase, message), status, headers


def init_app(app: Flask) -> None:
    for failure in REDIS_FAILURES:
        app.register_error_handler(failure, redis_failed)
