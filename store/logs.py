"""Log lines for every process (the API, the workers, ``make run``): readable text by default,
one JSON object per line with ``LOG_FORMAT=json``, and on each line the ids of what it is about.

A request binds ``request_id`` and a job's attempt binds ``job_id`` and the ``request_id`` that
submitted it (``bind``/``bound``); a filter on the handler copies the bound ids onto every
record, so library lines (rq's, gunicorn's, Flask's) carry them too. The ids are context
variables: each thread (gthread) or greenlet sees only its own request's.
"""

import contextvars
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
DEFAULT_FORMAT = "text"
# The ids a line can be about, in the order text lines show them.
CONTEXT_FIELDS = ("request_id", "job_id")
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s%(context)s"
# The text form of the bound ids (" request_id=... job_id=..."), an attribute only text uses.
CONTEXT_ATTR = "context"

_bound: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)


def log_format(env: Mapping[str, str] = os.environ) -> str:
    """``LOG_FORMAT`` from ``env``: ``text`` (the default) or ``json``.

    Raises:
        ValueError: any other value.
    """
    value = env.get("LOG_FORMAT", DEFAULT_FORMAT).strip().lower() or DEFAULT_FORMAT
    if value not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def bind(**fields: str | None) -> contextvars.Token:
    """Add ``fields`` (None values are left out) to the lines logged from here on, until
    ``unbind`` is given the token returned."""
    fresh = {name: value for name, value in fields.items() if value is not None}
    return _bound.set(MappingProxyType({**_bound.get(), **fresh}))


def unbind(token: contextvars.Token) -> None:
    _bound.reset(token)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """``bind`` for the lines logged inside the ``with`` block."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current(name: str) -> str | None:
    """The bound value of ``name``, if any."""
    return _bound.get().get(name)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record; a field the call passed in ``extra`` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _bound.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        shown = ((name, getattr(record, name, None)) for name in CONTEXT_FIELDS)
        setattr(record, CONTEXT_ATTR, "".join(f" {n}={v}" for n, v in shown if v is not None))
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, then any
    ids and ``extra`` fields, and ``exc_info`` with the traceback."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, CONTEXT_ATTR],
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def formatter(fmt: str, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    """The formatter of ``fmt`` (see ``FORMATS``); text lines follow ``text_format``."""
    if fmt == "json":
        return JsonLineFormatter()
    return logging.Formatter(text_format, defaults={CONTEXT_ATTR: ""})


def handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (stderr by default) writing ``fmt`` lines that carry the bound ids."""
    out = logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(formatter(fmt))
    out.addFilter(ContextFilter())
    return out


def configure(level: str | int = "INFO", fmt: str | None = None) -> logging.Handler:
    """Send the root logger's lines to stderr in ``fmt`` (``LOG_FORMAT`` when None), at ``level``.

    Replaces the handler an earlier call installed, so calling it again (a gunicorn config
    reload) does not print lines twice.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_backprop", False)]:
        root.removeHandler(old)
    new = handler(fmt or log_format())
    new._backprop = True
    root.addHandler(new)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return new
