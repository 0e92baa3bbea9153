"""Following a job live: GET /v1/jobs/{id}/events (Server-Sent Events) and ?wait= (long polling).

A real SSE client (httpx-sse) against gunicorn and a real worker; the store's side (entries
added by flushes and status changes, state read by offset) against the real Redis.
"""

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator

import httpx
import pytest
import requests
from httpx_sse import connect_sse

import store
from devtools.probes import answers_ok, free_port
from devtools.processes import stop_all, wait_until
from scripts.run import API_COMMAND, local
from tests.support.apps import ROOT, START_TIMEOUT, STOP_TIMEOUT, serve_api
from tests.support.auth import API_KEYS, bearer
from tests.support.jobs import DIVERGING_JOB, LONG_JOB, long_job
from tests.support.live import DEADLINE

ALICE, BOB = bearer("alice"), bearer("bob")
# Many flushes in a run of a second or two, so a stream has much to show.
FAST_FLUSH = {"FLUSH_SECONDS": "0.05"}
HEARTBEAT = "0.2"
FINAL = ("finished", "failed", "canceled")


@pytest.fixture(scope="module")
def server(redis_server: str) -> Iterator[str]:
    """The API under gunicorn, with API keys and a short heartbeat, shared by the module."""
    with serve_api(redis_server, API_KEYS=API_KEYS, EVENTS_HEARTBEAT_SECONDS=HEARTBEAT) as url:
        yield url


@pytest.fixture
def base(server: str, redis_url: str) -> str:
    """The module's server, with Redis emptied for this test."""
    return server


def submit(base: str, job: dict, headers=ALICE) -> str:
    response = requests.post(f"{base}/v1/jobs", json=job, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def client(base: str) -> httpx.Client:
    # Straight to 127.0.0.1 whatever proxy the environment names; reads wait up to DEADLINE.
    return httpx.Client(base_url=base, trust_env=False, timeout=httpx.Timeout(10, read=DEADLINE))


def follow(base: str, job_id: str, last_event_id: int | None = None, stop=None) -> list:
    """The events of one connection, ``(event, id, data)``, until the stream ends or until
    ``stop(events)`` says to hang up."""
    headers = dict(ALICE)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    events = []
    with (
        client(base) as http,
        connect_sse(http, "GET", f"/v1/jobs/{job_id}/events", headers=headers) as source,
    ):
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for sse in source.iter_sse():
            events.append((sse.event, int(sse.id), json.loads(sse.data)))
            if stop is not None and stop(events):
                break
    return events


def rows_of(events: list) -> dict:
    """The history the ``history`` events carry, concatenated column by column."""
    out: dict = {}
    for name, _, data in events:
        if name == "history":
            for column, values in data.items():
                out.setdefault(column, []).extend(values)
    return out


def full_history(base: str, job_id: str) -> dict:
    response = requests.get(f"{base}/v1/jobs/{job_id}/history", headers=ALICE, timeout=10)
    assert response.status_code == 200
    return response.json()


# -- the stream, end to end -------------------------------------------------------------------


def test_a_stream_shows_ordered_progress_the_whole_history_and_the_final_status(base, start_worker):
    start_worker(**FAST_FLUSH)
    job_id = submit(base, long_job(3000, validation={"fraction": 0.2}))
    events = follow(base, job_id)

    names = [name for name, _, _ in events]
    assert names[0] == "status" and events[0][2]["status"] in ("queued", "started")
    assert events[-1][0] == "status"
    final = events[-1][2]
    assert final == {"status": "finished", "error": None, "model_id": job_id}
    assert names.count("status") == len(set(d["status"] for n, _, d in events if n == "status"))
    progress = [data for name, _, data in events if name == "progress"]
    epochs = [p["epoch"] for p in progress]
    assert len(progress) > 3 and epochs == sorted(set(epochs)) and epochs[-1] == 3000
    assert set(progress[-1]["metrics"]) == {"accuracy", "val_accuracy"}
    assert progress[-1]["flushed_at"] > 0 and progress[-1]["epochs"] == 3000
    # The stream alone draws the whole curve: exactly the stored history, row for row.
    assert rows_of(events) == full_history(base, job_id)
    # Each event's id is the epochs of history sent so far.
    sent = 0
    for name, event_id, data in events:
        sent += len(data["epoch"]) if name == "history" else 0
        assert event_id == sent
    assert progress[-1]["loss"] == rows_of(events)["loss"][-1]


def test_a_client_that_reconnects_with_last_event_id_gets_exactly_the_rows_it_missed(
    base, start_worker
):
    start_worker(**FAST_FLUSH)
    job_id = submit(base, long_job(3000))

    def enough(events):
        return sum(len(d["epoch"]) for n, _, d in events if n == "history") > 10

    first = follow(base, job_id, stop=enough)
    assert not any(n == "status" and d["status"] in FINAL for n, _, d in first), "ended early"
    # Hang up mid-run and come back from an epoch inside a history event, not at its end.
    resume_at = first[-1][1] - 3
    rows = {column: values[:resume_at] for column, values in rows_of(first).items()}
    second = follow(base, job_id, last_event_id=resume_at)
    assert second[0][1] == resume_at
    for column, values in rows_of(second).items():
        rows[column] += values
    history = full_history(base, job_id)
    assert rows == history  # no gap, no repeat
    assert history["epoch"] == list(range(1, 3001))
    assert second[-1][2]["status"] == "finished"


def test_a_stream_of_an_ended_job_sends_its_history_and_end_at_once(base, start_worker):
    start_worker()
    job_id = submit(base, long_job(50))
    response = requests.get(f"{base}/v1/jobs/{job_id}?wait=60", headers=ALICE, timeout=70)
    assert response.json()["status"] == "finished"

    events = follow(base, job_id, last_event_id=20)
    assert [n for n, _, _ in events] == ["history", "progress", "status"]
    assert rows_of(events)["epoch"] == list(range(21, 51))
    assert events[-1][1] == 50
    assert follow(base, job_id, last_event_id=50)[0][0] == "progress"


def test_a_diverging_job_ends_its_stream_with_the_error(base, start_worker):
    start_worker()
    job = DIVERGING_JOB
    job_id = submit(base, job)
    name, _, data = follow(base, job_id)[-1]
    assert name == "status" and data["status"] == "failed"
    assert data["error"]["code"] == "diverged" and "epoch" in data["error"]["message"]


def test_cancelling_a_queued_job_ends_its_stream(base):
    job_id = submit(base, LONG_JOB)  # no worker: it stays queued
    with client(base) as http:
        url = f"/v1/jobs/{job_id}/events"
        with connect_sse(http, "GET", url, headers=ALICE) as source:
            events = source.iter_sse()
            first = next(events)
            assert (first.event, json.loads(first.data)["status"]) == ("status", "queued")
            cancel = requests.delete(f"{base}/v1/jobs/{job_id}", headers=ALICE, timeout=10)
            assert cancel.status_code == 200
            rest = [(e.event, json.loads(e.data)) for e in events]
    assert rest == [("status", {"status": "canceled", "error": None, "model_id": None})]


def test_an_idle_stream_sends_comment_heartbeats(base):
    job_id = submit(base, LONG_JOB)
    with client(base) as http:
        with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=ALICE) as response:
            lines = response.iter_lines()
            seen = []
            for line in lines:
                seen.append(line)
                if line.startswith(":"):
                    break
    assert seen[0] == "event: status"
    assert seen[-1] == ": heartbeat"


# -- tenancy and bad input -----------------------------------------------------------------


def test_another_tenant_gets_404_from_the_stream_and_the_long_poll(base):
    job_id = submit(base, LONG_JOB)
    for path in (f"/v1/jobs/{job_id}/events", f"/v1/jobs/{job_id}?wait=1"):
        response = requests.get(base + path, headers=BOB, timeout=10)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == 404
        unauthenticated = requests.get(base + path, timeout=10)
        assert unauthenticated.status_code == 401
    admin = requests.get(f"{base}/v1/jobs/{job_id}?wait=0.1", headers=bearer("admin"), timeout=10)
    assert admin.status_code == 200 and admin.json()["status"] == "queued"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("?wait=61", "wait"),
        ("?wait=0", "wait"),
        ("?wait=-1", "wait"),
        ("?wait=nan", "wait"),
        ("?wait=soon", "wait"),
    ],
)
def test_a_bad_wait_is_a_422_naming_it(base, path, field):
    job_id = submit(base, LONG_JOB)
    response = requests.get(f"{base}/v1/jobs/{job_id}{path}", headers=ALICE, timeout=10)
    assert response.status_code == 422, response.text
    assert list(response.json()["errors"]) == [field]


@pytest.mark.parametrize("value", ["-1", "x", "1000001"])
def test_a_bad_last_event_id_is_a_422_naming_it(base, value):
    job_id = submit(base, LONG_JOB)
    headers = {**ALICE, "Last-Event-ID": value}
    response = requests.get(f"{base}/v1/jobs/{job_id}/events", headers=headers, timeout=10)
    assert response.status_code == 422, response.text
    assert list(response.json()["errors"]) == ["Last-Event-ID"]


# -- long polling ------------------------------------------------------------------------------


def test_a_long_poll_answers_at_the_final_status(base, start_worker):
    start_worker()
    job_id = submit(base, long_job(300))
    response = requests.get(f"{base}/v1/jobs/{job_id}?wait=60", headers=ALICE, timeout=70)
    assert response.status_code == 200
    assert response.json()["status"] == "finished"
    assert response.json()["model_id"] == job_id


def test_a_long_poll_answers_at_its_timeout_with_the_current_state(base):
    job_id = submit(base, LONG_JOB)  # no worker: it stays queued
    response = requests.get(f"{base}/v1/jobs/{job_id}?wait=0.5", headers=ALICE, timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "queued"


# -- the bound on followers, and stopping ------------------------------------------------------


def test_followers_past_the_bound_get_503_with_retry_after_until_one_leaves(redis_url):
    with serve_api(redis_url, EVENTS_MAX_STREAMS="1", EVENTS_HEARTBEAT_SECONDS=HEARTBEAT) as url:
        job_id = submit(url, LONG_JOB, headers={})
        with client(url) as http:
            with connect_sse(http, "GET", f"/v1/jobs/{job_id}/events") as source:
                assert next(source.iter_sse()).event == "status"
                full = requests.get(f"{url}/v1/jobs/{job_id}/events", timeout=10)
                assert full.status_code == 503
                assert int(full.headers["Retry-After"]) > 0
                assert full.json()["code"] == 503
                poll = requests.get(f"{url}/v1/jobs/{job_id}?wait=1", timeout=10)
                assert poll.status_code == 503
                assert requests.get(f"{url}/v1/jobs/{job_id}", timeout=10).status_code == 200
        # The server notices the hang-up at its next heartbeat and frees the slot.
        for _ in range(int(DEADLINE / 0.1)):
            poll = requests.get(f"{url}/v1/jobs/{job_id}?wait=0.1", timeout=10)
            if poll.status_code == 200:
                break
        assert poll.status_code == 200


def test_a_process_keeps_as_many_streams_open_as_its_bound_allows(redis_url):
    # More followers than redis-py's default pool has connections (100), all waiting in Redis.
    bound = 110
    with serve_api(redis_url, EVENTS_MAX_STREAMS=str(bound)) as url:
        job_id = submit(url, LONG_JOB, headers={})
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        request = f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: test\r\n\r\n".encode()
        statuses, streams = [], []
        try:
            for _ in range(bound + 1):  # one after the other, each answered before the next
                streams.append(socket.create_connection(address, timeout=DEADLINE))
                streams[-1].sendall(request)
                statuses.append(streams[-1].recv(4096).split(b" ", 2)[1])
        finally:
            for stream in streams:
                stream.close()
    assert statuses == [b"200"] * bound + [b"503"]


def test_a_stopping_server_ends_its_streams_instead_of_waiting_for_them(redis_url):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "1", "REDIS_URL": redis_url}
    server = subprocess.Popen(local(API_COMMAND), cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_ok(f"{url}/healthz"), START_TIMEOUT, server, "gunicorn")
        job_id = submit(url, LONG_JOB, headers={})
        with client(url) as http:
            with connect_sse(http, "GET", f"/v1/jobs/{job_id}/events") as source:
                events = source.iter_sse()
                assert next(events).event == "status"
                server.send_signal(signal.SIGTERM)
                assert list(events) == []  # the stream ends: the client would reconnect
    finally:
        # Its graceful timeout (30 s) is longer than STOP_TIMEOUT: a server that waited for
        # its open stream would have had to be killed.
        killed = stop_all([server], STOP_TIMEOUT)
    assert killed == [] and server.returncode == 0


# -- the store's side --------------------------------------------------------------------------


def test_flushes_and_status_changes_add_entries_in_their_own_transactions(redis_conn):
    job_id = store.new_id()
    store.create_job(redis_conn, job_id, {}, {}, epochs=4, max_runtime_seconds=60)
    assert store.start_attempt(redis_conn, job_id) == 1
    history = {"epoch": [1, 2], "loss": [0.5, 0.25]}
    progress = {"epoch": 2, "epochs": 4, "loss": 0.25, "val_loss": None, "eta_seconds": 1.0}
    store.flush_progress(redis_conn, job_id, progress, history, 0)
    store.mark_queued(redis_conn, job_id)
    store.finish_job(redis_conn, job_id, 60, status=store.JobStatus.FAILED, error={"code": "x"})
    entries = store.read_entries(redis_conn, job_id, b"0", 0.01)
    kinds = [(e.kind, e.status, e.epoch) for e in entries]
    assert kinds == [
        ("status", "started", None),
        ("progress", None, 2),
        ("status", "queued", None),
        ("status", "failed", None),
    ]
    assert entries[1].t is not None
    # After the end the entries are only kept a while.
    assert 0 < redis_conn.ttl(store.events_key(job_id)) <= store.events.TTL_AFTER_END_SECONDS

    state, cursor = store.read_state(redis_conn, job_id, 1, 10, ["epoch", "loss"], True)
    assert cursor == entries[-1].id
    assert state.rows == {"epoch": [2], "loss": [0.25]}
    assert state.last == {"epoch": 2, "loss": 0.25}
    assert (state.status, state.error, state.progress) == ("failed", {"code": "x"}, progress)


def test_cancelling_a_queued_job_adds_its_final_entry(redis_conn):
    job_id = store.new_id()
    store.create_job(redis_conn, job_id, {}, {}, epochs=4, max_runtime_seconds=60)
    assert store.cancel_if_queued(redis_conn, job_id, store.now_iso(), "public")
    (entry,) = store.read_entries(redis_conn, job_id, b"0", 0.01)
    assert (entry.kind, entry.status) == ("status", "canceled")
    assert redis_conn.ttl(store.events_key(job_id)) > 0
