"""Request bodies: a size cap, checked before a byte is read, and a read timeout.

A JSON body declared larger than ``MAX_JSON_BODY_BYTES`` is answered 413 at once, with the
binary form to use instead; one of undeclared length (chunked) once it passes the cap. Under
gunicorn, reads of a body time out after ``BODY_TIMEOUT_SECONDS`` without a byte, so a client
that stops sending gets 408 instead of holding one of the server's threads for good.
"""

import contextlib

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from . import endpoints

JSON = "application/json"
# What to send instead of a JSON body past the cap, unless the view declares its own
# (``endpoints.big_body_hint``).
DEFAULT_HINT = (
    "Upload big training data once with POST /v1/datasets, as CSV or a NumPy .npy/.npz file "
    "(up to MAX_DATASET_BYTES), and give its dataset_id."
)


def refuse_larger_than(cap: int, limit: str) -> None:
    """413 when the body is larger than ``cap`` (or ``MAX_CONTENT_LENGTH``, if smaller): before
    reading it when its length is declared, after ``cap`` bytes when it is not (chunked).

    Args:
        limit: what the cap is and what to do instead, for the message.
    """
    largest = current_app.config["MAX_CONTENT_LENGTH"]
    if largest is not None and largest < cap:
        cap, limit = largest, f"a request body may have at most {largest:,} (MAX_CONTENT_LENGTH)."
    length = request.content_length
    if length is not None and length > cap:
        raise RequestEntityTooLarge(f"The body has {length:,} bytes; {limit}")
    if length is None:
        # Werkzeug cuts a body of undeclared length at the cap without a word, and what is
        # left may still parse: read one byte more (the view reads it all anyway) and look.
        request.max_content_length = cap + 1
        if len(request.get_data()) > cap:
            raise RequestEntityTooLarge(f"The body has more than {cap:,} bytes; {limit}")
    request.max_content_length = cap


def cap_json() -> None:
    """Keep the JSON body to ``MAX_JSON_BODY_BYTES`` (parsing takes several times its size)."""
    cap = current_app.config["MAX_JSON_BODY_BYTES"]
    hint = endpoints.current_big_body_hint() or DEFAULT_HINT
    refuse_larger_than(cap, f"a JSON body may have at most {cap:,} (MAX_JSON_BODY_BYTES). {hint}")


def cap_json_bodies() -> None:
    if request.mimetype == JSON:
        cap_json()


class TimedBody:
    """A WSGI input stream whose reads give up after ``seconds`` without a byte."""

    def __init__(self, stream, sock, seconds: float):
        self._stream, self._sock, self._seconds = stream, sock, seconds

    def read(self, *args):
        return self._timed(self._stream.read, *args)

    def readline(self, *args):
        return self._timed(self._stream.readline, *args)

    def readlines(self, *args):
        return self._timed(self._stream.readlines, *args)

    def __iter__(self):
        return iter(self.readline, b"")

    def _timed(self, read, *args):
        # Only while reading: the response is written without a timeout, as before.
        previous = self._sock.gettimeout()
        self._sock.settimeout(self._seconds)
        try:
            return read(*args)
        except TimeoutError as exc:
            raise RequestTimeout(
                f"No byte of the body arrived for {self._seconds:g} s (BODY_TIMEOUT_SECONDS); "
                "the request is dropped."
            ) from exc
        finally:
            with contextlib.suppress(OSError):  # the client may be gone
                self._sock.settimeout(previous)


class BodyTimeout:
    """WSGI middleware giving every request body under gunicorn a ``TimedBody``."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")  # gunicorn's client socket; absent elsewhere
        if sock is not None and self.seconds > 0:
            environ["wsgi.input"] = TimedBody(environ["wsgi.input"], sock, self.seconds)
        return self.app(environ, start_response)


def init_app(app: Flask) -> None:
    app.before_request(cap_json_bodies)
    app.wsgi_app = BodyTimeout(app.wsgi_app, app.config["BODY_TIMEOUT_SECONDS"])
