"""Typed exceptions built from the service's JSON error body ``{code, status, message, errors}``."""

from __future__ import annotations

import requests


class ApiError(Exception):
    """Any error answer from the service.

    Attributes:
        status_code: The HTTP status.
        message: The server's message.
        errors: Field errors keyed by field path (may be empty).
    """

    def __init__(self, status_code: int, message: str, errors: dict | None = None):
        super().__init__(f"{status_code}: {message}")
        self.status_code, self.message, self.errors = status_code, message, errors or {}


class ValidationError(ApiError):
    """400 or 422: the request was refused; ``errors`` names the fields."""


class NotFound(ApiError):
    """404: no such job, model or dataset (or another tenant's)."""


class Conflict(ApiError):
    """409: e.g. an Idempotency-Key reused with another body."""


class RateLimited(ApiError):
    """429: too many requests; ``retry_after`` is the seconds the server asked to wait."""

    def __init__(self, status_code: int, message: str, errors=None, retry_after: float = 1.0):
        super().__init__(status_code, message, errors)
        self.retry_after = retry_after


class Unavailable(ApiError):
    """503 (or 507): the service cannot take this now; ``retry_after`` as the server said."""

    def __init__(self, status_code: int, message: str, errors=None, retry_after: float = 1.0):
        super().__init__(status_code, message, errors)
        self.retry_after = retry_after


def retry_after(response: requests.Response, default: float = 1.0) -> float:
    """The seconds of the answer's ``Retry-After`` header, or ``default``."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default


def error_from(response: requests.Response) -> ApiError:
    """The typed exception for an error ``response``."""
    try:
        body = response.json()
        message, errors = body.get("message") or response.reason, body.get("errors") or {}
    except ValueError:
        message, errors = response.text[:500] or response.reason, {}
    code = response.status_code
    if code in (400, 413, 415, 422):
        return ValidationError(code, message, errors)
    if code == 404:
        return NotFound(code, message, errors)
    if code == 409:
        return Conflict(code, message, errors)
    if code == 429:
        return RateLimited(code, message, errors, retry_after(response))
    if code in (503, 507):
        return Unavailable(code, message, errors, retry_after(response))
    return ApiError(code, message, errors)
