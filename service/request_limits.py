"""Limits on a request's URL and header fields, answered with the JSON error body.

gunicorn refuses an over-long request line (414) or header field (431) itself, in HTML, before
the app sees the request. ``service.gunicorn_conf`` sets its limits above these, so within them
the app answers; only a request past gunicorn's own ceilings gets gunicorn's short HTML page.
"""

from flask import Flask, request
from flask_smorest import abort

# The request target (path and query string, as sent) and one header field (name and value).
MAX_URL_BYTES = 4096
MAX_HEADER_FIELD_BYTES = 8190


def check_request_size():
    """414 for a URL, 431 for a header field, longer than the limits."""
    # RAW_URI is the request target exactly as gunicorn read it.
    target = request.environ.get("RAW_URI") or request.full_path
    if len(target) > MAX_URL_BYTES:
        abort(414, message=f"The URL is longer than {MAX_URL_BYTES:,} bytes; send data in a body.")
    for name, value in request.headers.items():
        if len(name) + len(value) + 2 > MAX_HEADER_FIELD_BYTES:
            abort(431, message=f"Header {name} is longer than {MAX_HEADER_FIELD_BYTES:,} bytes.")


def init_app(app: Flask) -> None:
    app.before_request(check_request_size)
