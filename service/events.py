"""Following a job: its changes as Server-Sent Events, and waiting for its end (long polling).

A follower holds its request open. Each API process keeps at most ``EVENTS_MAX_STREAMS``
followers (event streams and long polls together) and answers 503 with ``Retry-After`` past
that; gunicorn gives each process that many threads on top of ``WEB_THREADS``
(service/gunicorn_conf.py), so followers never take the threads other requests need.

A stream sends, on connecting, the job's status, its history rows after ``Last-Event-ID`` and
its progress; then, each time the job's event stream (``store.events``) wakes it, each status
change, the new rows and the progress; the final status last, and then it ends. Every event's
id is the number of history rows sent so far, which is the last epoch sent: rows are read from
the stored columns from the client's ``Last-Event-ID``, so a client that reconnects gets
exactly the rows it missed.
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

from flask import Flask, Response, current_app
from flask_smorest import abort

import store
from store import FINAL_STATUSES

from .errors import REDIS_FAILURES
from .extensions import redis_conn
from .json_provider import finite
from .schemas import HISTORY_PAGE_ROWS

log = logging.getLogger(__name__)

# What a client told "too many followers" waits before trying again: streams end only when
# their jobs do, so a slot rarely frees within a second.
RETRY_AFTER_SECONDS = 5
# Not metrics: what every progress event states on its own.
PROGRESS_COLUMNS = ("epoch", "loss", "val_loss")
# A comment line on its own: a blank line after it would end an event without data, which
# some clients (httpx-sse) hand to their callers as an empty event.
HEARTBEAT = b": heartbeat\n"
STATUS, HISTORY, PROGRESS = "status", "history", "progress"  # the events' names
# The OpenAPI description of a stream: one event, as Server-Sent Events parsers read it.
STREAM_DOC = {
    "description": "Server-Sent Events until the job ends. `status`: `{status, error, "
    "model_id}` on connecting and at each change; `history`: the new rows, as columns like "
    "GET /history; `progress`: `{epoch, epochs, loss, val_loss, metrics, eta_seconds, "
    "flushed_at}` (flushed_at: the worker's unix time of the flush). Each event's id is the "
    "epochs of history sent so far. After a final status the stream ends. A comment line is "
    "sent after EVENTS_HEARTBEAT_SECONDS without an event.",
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "required": ["event", "id", "data"],
                "properties": {
                    "event": {"type": "string", "enum": [STATUS, HISTORY, PROGRESS]},
                    "id": {"type": "string", "pattern": "^[0-9]+$"},
                    "data": {"type": "string", "description": "The event's JSON, on one line."},
                },
            }
        }
    },
}
FULL = "Too many open event streams and long polls on this server; retry after Retry-After."


class Slots:
    """A bound on the followers one process keeps open at once."""

    def __init__(self, size: int):
        self._free = threading.BoundedSemaphore(size)

    def take(self) -> None:
        """Take a slot, or answer 503 with Retry-After when none is free."""
        if not self._free.acquire(blocking=False):
            abort(
                503,
                message="Too many open event streams and long polls on this server; retry later.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )

    def give(self) -> None:
        self._free.release()


def never() -> bool:
    return False


def stop_check() -> Callable[[], bool]:
    """The function that tells whether this server process is shutting down (see
    ``set_stopping``)."""
    return current_app.extensions.get("events_stopping", never)


def set_stopping(app: Flask, check: Callable[[], bool]) -> None:
    """Have followers end when ``check()`` turns true: gunicorn's stopping worker (see
    service/gunicorn_conf.py) would otherwise wait its whole graceful timeout for them."""
    app.extensions["events_stopping"] = check


def event(name: str, event_id: int, data: dict) -> bytes:
    """One Server-Sent Event, its data strict JSON on one line."""
    body = json.dumps(finite(data), separators=(",", ":"), allow_nan=False)
    return f"event: {name}\nid: {event_id}\ndata: {body}\n\n".encode()


class Follower:
    """One client's stream of one job's events, from ``offset`` rows of history on.

    Args:
        conn: Redis client.
        job_id: the job followed.
        offset: the history rows the client already has (its Last-Event-ID).
        heartbeat: seconds without an event after which a comment line is sent.
        stopping: returns True when the server is shutting down: the stream then ends, and
            the client reconnects (to another process) with its Last-Event-ID.
    """

    def __init__(self, conn, job_id: str, offset: int, heartbeat: float, stopping):
        self.conn, self.job_id, self.offset = conn, job_id, offset
        self.heartbeat, self.stopping = heartbeat, stopping
        self.columns: list[str] = []
        self.status: str | None = None  # the last status sent
        self.epoch: int | None = None  # the epoch of the last progress sent
        self.done = False

    def events(self) -> Iterator[bytes]:
        """The stream's bytes: events and heartbeats, until the job ends."""
        try:
            yield from self._follow()
        except REDIS_FAILURES as exc:
            # The client reconnects with its Last-Event-ID and is told 503 until Redis is back.
            log.warning("job %s: event stream ended: Redis failed (%s)", self.job_id, exc)

    def _follow(self) -> Iterator[bytes]:
        state, cursor = self._read(with_cursor=True)
        statuses: list[str] = []
        flushed_at = None
        while True:
            yield from self._changes(state, statuses, flushed_at)
            if self.done:
                return
            entries = yield from self._wait(cursor)
            if entries is None:
                return
            cursor = entries[-1].id
            statuses = [e.status for e in entries if e.kind == store.events.STATUS]
            flushed_at = max((e.t for e in entries if e.t is not None), default=None)
            state, _ = self._read()

    def _wait(self, cursor: bytes):
        """Block until the job's stream has entries after ``cursor`` and return them, sending
        heartbeats meanwhile; None when the server is stopping."""
        quiet_since = time.monotonic()
        while not self.stopping():
            left = self.heartbeat - (time.monotonic() - quiet_since)
            if left <= 0:
                yield HEARTBEAT
                quiet_since = time.monotonic()
                continue
            entries = store.read_entries(self.conn, self.job_id, cursor, left)
            if entries:
                return entries
        return None

    def _read(self, with_cursor: bool = False):
        if not self.columns:  # none before the job's first flush
            self.columns = store.history_columns(self.conn, self.job_id)
        return store.read_state(
            self.conn, self.job_id, self.offset, HISTORY_PAGE_ROWS, self.columns, with_cursor
        )

    def _changes(self, state: store.JobState, statuses: list[str], flushed_at: float | None):
        """The events that bring the client from what it was sent to ``state``.

        Args:
            statuses: the status changes the job's stream reported since the last state, in
                order; the client sees each, though ``state`` may be past some of them.
            flushed_at: when the worker flushed the progress that woke the stream.
        """
        if state.status is None:  # no such job (any more)
            self.done = True
            return
        for status in [*statuses, state.status]:
            if status != self.status and status not in FINAL_STATUSES:
                yield self._status(status)
        rows = state.rows
        while rows and (n := min(len(values) for values in rows.values())):
            self.offset += n
            yield event(HISTORY, self.offset, {c: v[:n] for c, v in rows.items()})
            if n < HISTORY_PAGE_ROWS:
                break
            rows = self._read()[0].rows
        progress = state.progress
        if progress is not None and progress["epoch"] != self.epoch:
            self.epoch = progress["epoch"]
            metrics = {c: v for c, v in state.last.items() if c not in PROGRESS_COLUMNS}
            data = {**progress, "metrics": metrics, "flushed_at": flushed_at}
            yield event(PROGRESS, self.offset, data)
        if state.status in FINAL_STATUSES:
            self.done = True
            yield self._status(state.status, state.error, state.model_id)

    def _status(self, status: str, error: dict | None = None, model_id: str | None = None):
        self.status = status
        data = {"status": status, "error": error, "model_id": model_id}
        return event(STATUS, self.offset, data)


def stream(job_id: str, offset: int) -> Response:
    """The job's events from ``offset`` rows of history on, as a streamed response; 503 when
    this process follows as many jobs as it may."""
    slots: Slots = current_app.extensions["events_slots"]
    slots.take()
    follower = Follower(
        redis_conn(),
        job_id,
        offset,
        current_app.config["EVENTS_HEARTBEAT_SECONDS"],
        stop_check(),
    )
    response = Response(
        follower.events(),
        mimetype="text/event-stream",
        # Proxies must pass each event on at once (X-Accel-Buffering: nginx's switch).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # Called when the server closes the response, whether or not the stream ever started.
    response.call_on_close(slots.give)
    return response


def wait_for_end(job_id: str, seconds: float) -> None:
    """Return when the job has a final status or after ``seconds``; 503 when this process
    follows as many jobs as it may."""
    slots: Slots = current_app.extensions["events_slots"]
    slots.take()
    try:
        store.wait_for_status(redis_conn(), job_id, FINAL_STATUSES, seconds, stop_check())
    finally:
        slots.give()


def init_app(app: Flask) -> None:
    app.extensions["events_slots"] = Slots(app.config["EVENTS_MAX_STREAMS"])
