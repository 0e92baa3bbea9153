"""Webhooks: signed POSTs of a job's status changes, with retries, a delivery log and an SSRF
guard.

A real HTTP server started here (http.server, in a thread) receives the webhooks; the API runs
under gunicorn, jobs train on a real worker, and deliveries go out from a real webhook worker
(``python -m workers webhooks``) with short retry intervals. Signatures are checked here with
this file's own HMAC code, as a receiver would check them, not with the service's.
"""

import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
import requests
from rq import Worker
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

import store
from devtools import embedded_redis
from devtools.probes import free_port
from devtools.processes import stop_all, wait_until
from scripts.run import WEBHOOK_WORKER_COMMAND, local, start_app, stop_children
from store import webhooks
from tests.support.apps import ROOT, START_TIMEOUT, STOP_TIMEOUT, serve_api
from tests.support.auth import API_KEYS, KEYED_CONFIG, bearer, keyed_app
from tests.support.jobs import GOOD_JOB, LONG_JOB, edited
from tests.support.live import DEADLINE, POLL_INTERVAL

# Short backoff for the webhook worker: rq's scheduler moves due retries every second.
FAST_RETRIES = {"WEBHOOK_RETRY_INTERVALS": "1,1"}


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does: recompute HMAC-SHA256 of ``<t>.<body>`` and compare."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    signed = fields["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


class Receiver:
    """An HTTP server on a free port of 127.0.0.1 that records every POST and answers each with
    the next of ``statuses`` (200 once they run out); ``on_request(n)`` runs before the n-th
    (1-based) answer."""

    def __init__(self, statuses=(), on_request: Callable[[int], None] | None = None):
        self.statuses = list(statuses)
        self.on_request = on_request
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                if receiver.on_request is not None:
                    receiver.on_request(len(receiver.requests))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/training?src=test"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, n: int) -> list[tuple[dict, bytes]]:
        """The first ``n`` requests, once they have come (fails after DEADLINE)."""
        deadline = time.monotonic() + DEADLINE
        while len(self.requests) < n:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {n} webhooks came"
            time.sleep(POLL_INTERVAL)
        return self.requests[:n]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(statuses=(), on_request=None) -> Receiver:
        started.append(Receiver(statuses, on_request))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


@pytest.fixture
def start_webhook_worker(redis_url: str) -> Iterator[Callable[..., subprocess.Popen]]:
    """Factory: ``python -m workers webhooks`` against ``redis_url``, allowed to post to private
    addresses (the receiver listens on 127.0.0.1), with ``env`` on top."""
    started: list[subprocess.Popen] = []

    def start(**env: str) -> subprocess.Popen:
        command = local(WEBHOOK_WORKER_COMMAND)
        environment = {
            **os.environ,
            "REDIS_URL": redis_url,
            "WEBHOOK_ALLOW_PRIVATE": "1",
            **env,
        }
        # A group of its own: rq's scheduler runs in a child process.
        process = subprocess.Popen(command, cwd=ROOT, env=environment, process_group=0)
        started.append(process)
        return process

    yield start
    stop_all(started, STOP_TIMEOUT)
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever it left behind
        except ProcessLookupError:
            pass


@pytest.fixture
def api(redis_url: str) -> Iterator[Callable]:
    """The API under gunicorn with API keys and private callback addresses allowed (the
    receiver listens on 127.0.0.1): ``api(method, path, tenant, **kwargs)``, from any thread."""
    with serve_api(redis_url, API_KEYS=API_KEYS, WEBHOOK_ALLOW_PRIVATE="1") as base:

        def call(method: str, path: str, tenant: str = "alice", **kwargs):
            return requests.request(
                method, base + path, headers=bearer(tenant), timeout=10, **kwargs
            )

        yield call


def submit(api, job: dict, tenant: str = "alice") -> str:
    response = api("POST", "/v1/jobs", tenant, json=job)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_for_deliveries(api, job_id: str, done: Callable[[list], bool]) -> list[dict]:
    """GET /deliveries until ``done`` accepts the list (fails after DEADLINE)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        response = api("GET", f"/v1/jobs/{job_id}/deliveries")
        assert response.status_code == 200, response.text
        deliveries = response.json()["deliveries"]
        if done(deliveries):
            return deliveries
        assert time.monotonic() < deadline, deliveries
        time.sleep(POLL_INTERVAL)


def ended(deliveries: list) -> bool:
    return bool(deliveries) and all(d["status"] != "pending" for d in deliveries)


def with_callbacks(*callbacks: dict, job: dict = GOOD_JOB) -> dict:
    return {**job, "callbacks": list(callbacks)}


# -- with gunicorn, a training worker and a webhook worker -------------------------------------


@pytest.mark.process
def test_a_job_posts_its_start_and_end_signed_with_the_tenants_secret(
    api, start_worker, start_webhook_worker, receivers
):
    receiver = receivers()
    start_worker()
    start_webhook_worker()
    secret = api("POST", "/v1/webhooks/secret").json()["secret"]
    callback = {"url": receiver.url, "events": ["started", "finished"]}
    job_id = submit(api, with_callbacks(callback))

    (started, finished) = receiver.wait_for(2)
    record = api("GET", f"/v1/jobs/{job_id}").json()
    assert record["status"] == "finished"
    assert record["callbacks"] == [callback]
    for (headers, body), event in ((started, "started"), (finished, "finished")):
        assert verify(secret, headers["X-Signature"], body)
        assert not verify(secret, headers["X-Signature"], body + b" ")
        payload = json.loads(body)
        assert payload["event"] == headers["X-Webhook-Event"] == event
        assert payload["delivery_id"] == headers["X-Delivery-Id"]
        assert payload["job"]["id"] == job_id
        assert headers["Content-Type"] == "application/json"
    assert json.loads(started[1])["job"]["status"] == "started"
    # The final webhook carries the job exactly as GET /v1/jobs/{id} shows it.
    assert json.loads(finished[1])["job"] == record

    deliveries = wait_for_deliveries(api, job_id, ended)
    assert [(d["event"], d["status"], d["url"]) for d in deliveries] == [
        ("started", "delivered", receiver.url),
        ("finished", "delivered", receiver.url),
    ]
    assert [[a["status_code"] for a in d["attempts"]] for d in deliveries] == [[200], [200]]
    assert [d["id"] for d in deliveries] == [h["X-Delivery-Id"] for h, _ in receiver.requests]
    # Another tenant cannot see them; an admin can.
    assert api("GET", f"/v1/jobs/{job_id}/deliveries", "bob").status_code == 404
    assert api("GET", f"/v1/jobs/{job_id}/deliveries", "admin").json()["deliveries"] == deliveries


@pytest.mark.process
def test_a_receiver_that_answers_500_twice_gets_the_third_attempt(
    api, start_worker, start_webhook_worker, receivers
):
    receiver = receivers(statuses=[500, 500])
    start_worker()
    start_webhook_worker(**FAST_RETRIES)
    secret = api("POST", "/v1/webhooks/secret").json()["secret"]
    job_id = submit(api, with_callbacks({"url": receiver.url, "events": ["finished"]}))

    (delivery,) = wait_for_deliveries(api, job_id, ended)
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]
    assert all(a["error"] is None for a in delivery["attempts"])
    assert delivery["ended_at"] == delivery["attempts"][-1]["at"]
    requests_ = receiver.wait_for(3)
    assert len(receiver.requests) == 3
    # The same delivery each time: same id, same body, each signed afresh.
    assert {h["X-Delivery-Id"] for h, _ in requests_} == {delivery["id"]}
    assert len({body for _, body in requests_}) == 1
    assert all(verify(secret, h["X-Signature"], body) for h, body in requests_)


@pytest.mark.process
def test_a_delivery_that_keeps_failing_is_marked_failed(
    api, start_worker, start_webhook_worker, receivers
):
    receiver = receivers(statuses=[503] * 10)
    start_worker()
    start_webhook_worker(WEBHOOK_RETRY_INTERVALS="1")  # two attempts in all
    api("POST", "/v1/webhooks/secret")
    job_id = submit(api, with_callbacks({"url": receiver.url, "events": ["finished"]}))

    (delivery,) = wait_for_deliveries(api, job_id, ended)
    assert delivery["status"] == "failed"
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 503]
    assert delivery["ended_at"] is not None
    assert len(receiver.requests) == 2


@pytest.mark.process
def test_a_rotated_secret_signs_the_next_attempt_and_the_old_one_no_longer_verifies(
    api, start_worker, start_webhook_worker, receivers
):
    issued = [api("POST", "/v1/webhooks/secret").json()["secret"]]

    def rotate_before_the_first_answer(n: int) -> None:
        if n == 1:
            issued.append(api("POST", "/v1/webhooks/secret").json()["secret"])

    receiver = receivers(statuses=[500], on_request=rotate_before_the_first_answer)
    start_worker()
    start_webhook_worker(WEBHOOK_RETRY_INTERVALS="1")
    job_id = submit(api, with_callbacks({"url": receiver.url, "events": ["finished"]}))

    (delivery,) = wait_for_deliveries(api, job_id, ended)
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]
    old, new = issued
    assert old != new
    (first, body), (second, same_body) = receiver.wait_for(2)
    assert body == same_body
    assert verify(old, first["X-Signature"], body) and not verify(new, first["X-Signature"], body)
    assert verify(new, second["X-Signature"], body) and not verify(old, second["X-Signature"], body)


@pytest.mark.process
def test_the_worker_checks_the_address_again_before_it_posts(
    api, start_worker, start_webhook_worker, receivers
):
    # The API allowed 127.0.0.1 at submit; this webhook worker does not (DNS may have changed
    # since, or the settings differ): it refuses without sending, and gives up.
    receiver = receivers()
    start_worker()
    start_webhook_worker(WEBHOOK_ALLOW_PRIVATE="0", WEBHOOK_RETRY_INTERVALS="")
    api("POST", "/v1/webhooks/secret")
    job_id = submit(api, with_callbacks({"url": receiver.url, "events": ["finished"]}))

    (delivery,) = wait_for_deliveries(api, job_id, ended)
    assert delivery["status"] == "failed"
    (attempt,) = delivery["attempts"]
    assert attempt["status_code"] is None
    assert "'127.0.0.1' is a loopback address" in attempt["error"]
    assert receiver.requests == []


@pytest.mark.process
def test_a_delivery_whose_worker_dies_mid_post_is_sent_again(
    api, start_worker, start_webhook_worker, receivers, redis_conn
):
    answer = threading.Event()
    receiver = receivers(on_request=lambda n: n == 1 and answer.wait(DEADLINE))
    start_worker()
    doomed = start_webhook_worker()
    api("POST", "/v1/webhooks/secret")
    job_id = submit(api, with_callbacks({"url": receiver.url, "events": ["finished"]}))
    receiver.wait_for(1)

    os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its scheduler, as a lost machine
    doomed.wait()
    answer.set()  # the answer to the first POST goes nowhere
    # rq finds a dead worker's job once its heartbeat has expired (a minute or more later):
    # this is that cleanup, run as if the time had passed.
    registry = StartedJobRegistry(
        store.queue.WEBHOOK_QUEUE_NAME, connection=redis_conn, serializer=JSONSerializer
    )
    registry.cleanup(timestamp=time.time() + 3600)
    start_webhook_worker()

    (delivery,) = wait_for_deliveries(api, job_id, ended)
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [200]  # the lost one left no trace
    (first, body), (second, same_body) = receiver.wait_for(2)
    assert first["X-Delivery-Id"] == second["X-Delivery-Id"] == delivery["id"]
    assert body == same_body


@pytest.fixture
def restartable_redis(tmp_path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A redis-server of its own that keeps an append-only file: ``(url, stop, start)``, where
    ``stop()`` stops it (it writes its file as it exits) and ``start()`` starts it again on the
    same port with the same file."""
    port = free_port()
    args = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")
    command = embedded_redis.command(port, tmp_path, args)
    servers: list[subprocess.Popen] = []

    def start() -> None:
        servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        embedded_redis.wait_until_ready(servers[-1], port)

    def stop() -> None:
        servers[-1].terminate()
        servers[-1].wait(STOP_TIMEOUT)

    start()
    yield embedded_redis.url(port), stop, start
    stop_all(servers, STOP_TIMEOUT)


@pytest.mark.process
def test_a_retry_due_while_redis_restarts_is_sent_once_redis_is_back(
    restartable_redis, start_webhook_worker, receivers
):
    url, stop_redis, start_redis = restartable_redis
    receiver = receivers(statuses=[500])
    app = keyed_app(url, WEBHOOK_ALLOW_PRIVATE=True)
    try:  # a canceled job's delivery: no training worker needed
        client = app.test_client()
        make_secret(client)
        callback = {"url": receiver.url, "events": ["canceled"]}
        job_id = post_job(client, with_callbacks(callback, job=LONG_JOB)).get_json()["id"]
        assert client.delete(f"/v1/jobs/{job_id}", headers=bearer("alice")).status_code == 200
    finally:
        app.extensions["redis"].close()
    worker = start_webhook_worker(REDIS_URL=url, WEBHOOK_RETRY_INTERVALS="2")
    receiver.wait_for(1)
    conn = redis.Redis.from_url(url)
    try:
        scheduled = ScheduledJobRegistry(
            store.queue.WEBHOOK_QUEUE_NAME, connection=conn, serializer=JSONSerializer
        )
        wait_until(lambda: scheduled.count == 1, DEADLINE, worker, "the retry scheduled")
        # Down longer than redis-py's own retries (10, at most about 4 s in all): rq's
        # scheduler meets the ConnectionError, as in a restart or a failover.
        stop_redis()
        time.sleep(6)
        start_redis()

        (first, body), (second, same_body) = receiver.wait_for(2)
        assert first["X-Delivery-Id"] == second["X-Delivery-Id"] and body == same_body
        wait_until(
            lambda: webhooks.list_deliveries(conn, job_id)[0]["status"] == "delivered",
            DEADLINE,
            worker,
            "the delivery recorded",
        )
        attempts = webhooks.list_deliveries(conn, job_id)[0]["attempts"]
        assert [a["status_code"] for a in attempts] == [500, 200]
        assert worker.poll() is None  # the worker stayed up through it
    finally:
        conn.close()


@pytest.mark.process
def test_a_webhook_worker_stopped_while_redis_is_down_exits_with_its_scheduler(
    restartable_redis, start_webhook_worker
):
    url, stop_redis, _ = restartable_redis
    worker = start_webhook_worker(REDIS_URL=url)
    conn = redis.Redis.from_url(url)
    try:
        lock = "rq:scheduler-lock:" + store.queue.WEBHOOK_QUEUE_NAME
        wait_until(lambda: conn.exists(lock), START_TIMEOUT, worker, "the scheduler")
    finally:
        conn.close()
    stop_redis()
    time.sleep(3)  # the scheduler meets the errors and waits to start its loop again

    worker.terminate()
    worker.wait(STOP_TIMEOUT)  # it waits for its scheduler, which must not wait for Redis
    with pytest.raises(ProcessLookupError):
        os.killpg(worker.pid, 0)  # nothing left in its process group


@pytest.mark.process
def test_a_webhook_worker_whose_start_fails_exits_with_its_scheduler(
    redis_url, redis_conn, start_webhook_worker
):
    # A Redis user that may take the scheduler's lock but not register a worker: the worker's
    # start fails once its scheduler runs, as when Redis goes away at that moment.
    user = "schedulers-only"
    redis_conn.acl_setuser(
        user, enabled=True, passwords=["+pw"], commands=["+@all"], keys=["rq:schedul*"]
    )
    try:
        worker = start_webhook_worker(REDIS_URL=redis_url.replace("//", f"//{user}:pw@", 1))
        # rq's scheduler process is not a daemon: left running, the worker could not exit.
        assert worker.wait(STOP_TIMEOUT) != 0
        with pytest.raises(ProcessLookupError):
            os.killpg(worker.pid, 0)  # nothing left in its process group
        assert redis_conn.get("rq:scheduler-lock:" + store.queue.WEBHOOK_QUEUE_NAME) is None
    finally:
        redis_conn.acl_deluser(user)


# -- with the Flask test client ------------------------------------------------------------


@pytest.fixture
def app_config() -> dict:
    return KEYED_CONFIG


def make_secret(client, tenant: str = "alice") -> str:
    response = client.post("/v1/webhooks/secret", headers=bearer(tenant))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["secret"]


def post_job(client, job: dict, tenant: str = "alice"):
    return client.post("/v1/jobs", json=job, headers=bearer(tenant))


def test_the_secret_is_shown_once_and_rotation_replaces_it(client, redis_conn):
    assert client.get("/v1/webhooks/secret", headers=bearer("alice")).status_code == 404
    first = make_secret(client)
    second = make_secret(client)
    assert first != second and first.startswith("whsec_") and len(first) > 40
    info = client.get("/v1/webhooks/secret", headers=bearer("alice"))
    assert info.status_code == 200
    assert first not in info.get_data(as_text=True) and second not in info.get_data(as_text=True)
    assert set(info.get_json()) == {"created_at"}
    assert webhooks.current_secret(redis_conn, "alice") == second
    # Each tenant has its own.
    assert client.get("/v1/webhooks/secret", headers=bearer("bob")).status_code == 404


def test_a_status_change_reads_a_job_with_callbacks_once(client, redis_conn, round_trips):
    make_secret(client)
    callback = {"url": "https://93.184.215.14/hook", "events": ["canceled"]}
    job_id = post_job(client, with_callbacks(callback, job=LONG_JOB)).get_json()["id"]
    redis_conn.ping()  # its connection is open before the count
    del round_trips[:]
    assert store.cancel_if_queued(redis_conn, job_id, store.now_iso(), "alice")
    # One read of what the status change asks for, then the record for the delivery's body:
    # its callbacks are not read again.
    reads = [name for name in round_trips if name in ("HGET", "HMGET", "HGETALL")]
    assert reads == ["HMGET", "HGETALL"], " ".join(round_trips)
    assert [d["event"] for d in webhooks.list_deliveries(redis_conn, job_id)] == ["canceled"]


def test_callbacks_need_a_secret_first(client):
    response = post_job(client, with_callbacks({"url": "https://example.com/hook"}))
    assert response.status_code == 422
    body = response.get_json()
    assert "POST /v1/webhooks/secret" in body["errors"]["callbacks"][0]


REFUSED = [
    ("http://127.0.0.1:8080/hook", "'127.0.0.1' is a loopback address"),
    ("http://localhost/hook", "'localhost' resolves to"),
    ("http://10.1.2.3/hook", "'10.1.2.3' is a private address"),
    ("http://192.168.0.1/hook", "'192.168.0.1' is a private address"),
    ("http://169.254.169.254/latest/meta-data", "'169.254.169.254' is a link-local address"),
    ("http://[::1]:9000/hook", "'::1' is a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "'::ffff:127.0.0.1' is a loopback address"),
    ("https://0.0.0.0/hook", "'0.0.0.0' is a"),
]


@pytest.mark.parametrize("url, message", REFUSED)
def test_a_private_address_is_refused_at_submit(client, redis_conn, url, message):
    make_secret(client)
    response = post_job(client, with_callbacks({"url": "https://93.184.215.14/a"}, {"url": url}))
    assert response.status_code == 422
    body = response.get_json()
    assert list(body["errors"]) == ["callbacks.1.url"]
    assert message in body["errors"]["callbacks.1.url"][0]
    assert "callbacks.1.url" in body["message"]
    assert store.list_jobs(redis_conn, 10)[0] == []  # nothing stored


def test_private_addresses_are_allowed_with_the_flag(make_app):
    client = make_app(**KEYED_CONFIG, WEBHOOK_ALLOW_PRIVATE=True).test_client()
    make_secret(client)
    callbacks = [{"url": url} for url, _ in REFUSED[:5]]
    response = post_job(client, with_callbacks(*callbacks))
    assert response.status_code == 202, response.get_json()
    assert [c["url"] for c in response.get_json()["callbacks"]] == [c["url"] for c in callbacks]
    # events default to all four
    assert {tuple(c["events"]) for c in response.get_json()["callbacks"]} == {webhooks.EVENTS}


BAD_CALLBACKS = [
    ([{"url": "ftp://example.com/x"}], "callbacks.0.url"),
    ([{"url": "example.com/x"}], "callbacks.0.url"),
    ([{"url": "https://user:pw@example.com/x"}], "callbacks.0.url"),
    ([{"url": "https://example.com/\n"}], "callbacks.0.url"),
    ([{"url": "https://example.com/" + "a" * webhooks.MAX_URL_LENGTH}], "callbacks.0.url"),
    ([{"url": "https://example.com:99999/x"}], "callbacks.0.url"),
    ([{"url": "https://:80/x"}], "callbacks.0.url"),
    ([{"url": "https://example.com/x", "events": ["done"]}], "callbacks.0.events.0"),
    ([{"url": "https://example.com/x", "events": []}], "callbacks.0.events"),
    ([{"url": "https://example.com/x", "extra": 1}], "callbacks.0.extra"),
    ([{"events": ["failed"]}], "callbacks.0.url"),
    ([{"url": "https://example.com/x"}] * (webhooks.MAX_CALLBACKS + 1), "callbacks"),
    ({"url": "https://example.com/x"}, "callbacks"),
]


@pytest.mark.parametrize("callbacks, field", BAD_CALLBACKS)
def test_malformed_callbacks_are_422_naming_the_field(make_app, callbacks, field):
    client = make_app(**KEYED_CONFIG, WEBHOOK_ALLOW_PRIVATE=True).test_client()
    make_secret(client)
    response = post_job(client, {**GOOD_JOB, "callbacks": callbacks})
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]


def test_canceling_a_queued_job_records_its_canceled_delivery(make_app, redis_conn):
    client = make_app(**KEYED_CONFIG, WEBHOOK_ALLOW_PRIVATE=True).test_client()
    make_secret(client)
    callbacks = [
        {"url": "http://127.0.0.1:9/a", "events": ["canceled"]},
        {"url": "http://127.0.0.1:9/b", "events": ["finished"]},
        {"url": "http://127.0.0.1:9/c", "events": ["canceled", "canceled", "started"]},
    ]
    response = post_job(client, with_callbacks(*callbacks, job=LONG_JOB))
    assert response.get_json()["callbacks"][2]["events"] == ["canceled", "started"]
    job_id = response.get_json()["id"]
    path = f"/v1/jobs/{job_id}/deliveries"
    assert client.get(path, headers=bearer("alice")).get_json() == {"deliveries": []}

    assert client.delete(f"/v1/jobs/{job_id}", headers=bearer("alice")).status_code == 200
    deliveries = client.get(path, headers=bearer("alice")).get_json()["deliveries"]
    assert [(d["url"], d["event"], d["status"]) for d in deliveries] == [
        ("http://127.0.0.1:9/a", "canceled", "pending"),
        ("http://127.0.0.1:9/c", "canceled", "pending"),
    ]
    assert all(d["attempts"] == [] for d in deliveries)
    # Queued for the webhook worker by delivery id, as JSON.
    queued = store.queue.webhook_queue(redis_conn).get_job_ids()
    assert queued == [d["id"] for d in deliveries]
    assert client.get(path, headers=bearer("bob")).status_code == 404
    assert client.get(path, headers=bearer("admin")).status_code == 200
    assert client.get(f"/v1/jobs/{'0' * 32}/deliveries", headers=bearer("alice")).status_code == 404


def test_an_event_recorded_twice_is_delivered_once(make_app, redis_conn):
    # A final write retried after a lost reply, or a second attempt starting the job again.
    client = make_app(**KEYED_CONFIG, WEBHOOK_ALLOW_PRIVATE=True).test_client()
    make_secret(client)
    job = with_callbacks({"url": "http://127.0.0.1:9/a"}, {"url": "http://127.0.0.1:9/b"})
    job_id = post_job(client, job).get_json()["id"]
    assert store.start_attempt(redis_conn, job_id) == 1
    store.update_job(redis_conn, job_id, status=store.JobStatus.QUEUED)  # requeued
    assert store.start_attempt(redis_conn, job_id) == 2
    for _ in range(2):
        store.finish_job(redis_conn, job_id, 60, status="failed", ended_at=store.now_iso())
    events = [d["event"] for d in webhooks.list_deliveries(redis_conn, job_id)]
    assert events == ["started", "started", "failed", "failed"]
    assert len(store.queue.webhook_queue(redis_conn).get_job_ids()) == 4


def test_a_job_without_callbacks_records_no_delivery(client, redis_conn):
    job_id = post_job(client, edited()).get_json()["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer("alice")).get_json()["callbacks"] == []
    store.start_attempt(redis_conn, job_id)
    store.finish_job(redis_conn, job_id, 60, status="finished", ended_at=store.now_iso())
    assert webhooks.list_deliveries(redis_conn, job_id) == []
    assert store.queue.webhook_queue(redis_conn).count == 0


def test_the_signature_is_stripes_scheme():
    # Stripe's documented construction: HMAC-SHA256 of "<t>.<payload>", hex, as t=...,v1=...
    header = webhooks.signature_header("whsec_test", 1700000000, b'{"a": 1}')
    digest = hmac.new(b"whsec_test", b'1700000000.{"a": 1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={digest}"


@pytest.mark.process
def test_make_run_starts_a_webhook_worker_with_the_scheduler(redis_url, redis_conn, tmp_path):
    env = {**os.environ, "REDIS_URL": redis_url, "WORKERS": "0", "PORT": str(free_port())}
    children = start_app(env, str(tmp_path))
    try:
        assert [c.name for c in children] == ["webhook.1", "api"]
        wait_until(
            lambda: any(w.queue_names() == ["webhooks"] for w in Worker.all(redis_conn)),
            START_TIMEOUT,
            children[0].process,
            "a worker on the webhooks queue",
        )
        # Retries wait in rq's scheduled registry; this worker's scheduler releases them.
        wait_until(
            lambda: redis_conn.exists("rq:scheduler-lock:webhooks"),
            START_TIMEOUT,
            children[0].process,
            "the webhooks queue's scheduler",
        )
    finally:
        stop_children(children, STOP_TIMEOUT)


def test_the_readme_verifies_a_signature_as_the_worker_signs():
    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\nimport hashlib, hmac, time\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    # The README's own lines, run as a reader would paste them.
    exec("import hashlib, hmac, time\n" + code, namespace)
    body = b'{"delivery_id": "d", "event": "finished", "job": {}}'
    header = webhooks.signature_header("whsec_x", int(time.time()), body)
    assert namespace["verify"]("whsec_x", body, header)
    assert not namespace["verify"]("whsec_y", body, header)
    assert not namespace["verify"]("whsec_x", body[:-1] + b" }", header)
    stale = webhooks.signature_header("whsec_x", int(time.time()) - 3600, body)
    assert not namespace["verify"]("whsec_x", body, stale)
