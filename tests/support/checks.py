"""What a refused request must answer, and what it must leave in Redis."""

import json

import store

ERROR_FIELDS = {"code", "status", "message", "errors"}


def assert_error(response, status: int, path: str | None = None) -> dict:
    """The one JSON error body with this status, naming ``path`` among its errors if given.

    ``response`` is a Flask test client's or a ``requests`` one: both have ``status_code``,
    ``headers`` and ``text``, so in-process and over-HTTP tests check the same body.
    """
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].partition(";")[0].strip() == "application/json"
    body = json.loads(response.text)
    assert set(body) <= ERROR_FIELDS
    assert body["code"] == status
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    if path is not None:
        assert path in body["errors"], body
        assert all(isinstance(m, str) and m for m in body["errors"][path])
    return body


def stored_keys(redis_conn) -> list:
    """Every key but the rate limiter's counters, which count bad requests too."""
    prefix = store.RATE_LIMIT_PREFIX.encode()
    return sorted(k for k in redis_conn.keys("*") if prefix not in k)
