"""Answers and bodies stay bounded, and slow clients do not starve the API.

Big weights are refused as JSON and served as .npz; histories come in pages with a Link to the
next one; JSON bodies past MAX_JSON_BODY_BYTES and binary /v2 bodies past the biggest valid
request are refused (413) before they are read; and under the real gunicorn a body that stops
arriving is answered 408 while /healthz keeps answering. The in-process tests use the Flask
test client against the session's real Redis; models are trained by the worker's task code.
"""

import http.client
import io
import json
import socket
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import requests

import store
from service.schemas import HISTORY_MAX_ROWS, HISTORY_PAGE_ROWS
from tests.support.apps import serve_api
from tests.support.checks import assert_error
from tests.support.jobs import GOOD_JOB, trained, v2_request

XOR_PARAMS = 2 * 2 + 2 + 2 * 1 + 1


@pytest.fixture
def make_client(make_app):
    """Factory: a test client of an app with these config overrides."""

    def make(**config):
        return make_app(**config).test_client()

    return make


def test_json_weights_of_a_model_over_the_cap_are_422_pointing_to_npz(make_client):
    client = make_client(MAX_JSON_WEIGHTS=XOR_PARAMS - 1)
    model_id = trained(client, GOOD_JOB)
    body = assert_error(client.get(f"/v1/models/{model_id}/weights"), 422, "format")
    assert "MAX_JSON_WEIGHTS" in body["message"] and "format=npz" in body["message"]
    npz = client.get(f"/v1/models/{model_id}/weights?format=npz")
    assert npz.status_code == 200
    assert set(np.load(io.BytesIO(npz.data))) == {"W0", "b0", "W1", "b1"}


def test_json_weights_within_the_cap_are_served_as_before(make_client):
    client = make_client(MAX_JSON_WEIGHTS=XOR_PARAMS)
    model_id = trained(client, GOOD_JOB)
    weights = client.get(f"/v1/models/{model_id}/weights").get_json()
    assert [(len(layer["W"]), len(layer["b"])) for layer in weights] == [(2, 2), (2, 1)]


@pytest.fixture
def long_job(redis_conn) -> tuple[str, int]:
    """A job whose stored history has a default page and 5 entries more."""
    job_id = store.new_id()
    store.create_job(redis_conn, job_id, {}, {}, HISTORY_PAGE_ROWS + 5)
    epochs = np.arange(1, HISTORY_PAGE_ROWS + 6)
    store.replace_history(redis_conn, job_id, {"epoch": epochs, "loss": 1.0 / epochs})
    return job_id, HISTORY_PAGE_ROWS + 5


def next_link(response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    url, rel = link.split(";")
    assert rel.strip() == 'rel="next"'
    return url.strip("<> ")


def test_history_comes_in_pages_with_a_link_to_the_next(make_client, long_job):
    client = make_client()
    job_id, total = long_job
    first = client.get(f"/v1/jobs/{job_id}/history")
    assert first.status_code == 200
    assert first.get_json()["epoch"] == list(range(1, HISTORY_PAGE_ROWS + 1))
    url = next_link(first)
    assert parse_qs(urlparse(url).query) == {
        "offset": [str(HISTORY_PAGE_ROWS)],
        "limit": [str(HISTORY_PAGE_ROWS)],
    }
    rest = client.get(url)
    assert rest.get_json()["epoch"] == list(range(HISTORY_PAGE_ROWS + 1, total + 1))
    assert next_link(rest) is None


def test_history_pages_are_capped_and_the_message_says_how_to_read_on(make_client, long_job):
    client = make_client()
    job_id, _ = long_job
    response = client.get(f"/v1/jobs/{job_id}/history?limit={HISTORY_MAX_ROWS + 1}")
    body = assert_error(response, 422, "limit")
    assert f"{HISTORY_MAX_ROWS:,}" in body["message"] and "offset" in body["message"]
    last = client.get(f"/v1/jobs/{job_id}/history?offset=10&limit=0")
    assert last.get_json() == {"epoch": [], "loss": []} and next_link(last) is None


# Not JSON at all: a body refused for its size must be refused before it is parsed (400).
NOT_JSON = b"{" * 2000


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("/v1/jobs", "POST /v1/datasets"),
        ("/v1/datasets", "POST /v1/datasets"),
        ("/v1/models/{id}/predict", "/v2/models/{id}/infer"),
        ("/v2/models/{id}/infer", "Inference-Header-Content-Length"),
    ],
)
def test_json_bodies_over_the_cap_are_413_before_parsing(make_client, path, hint):
    client = make_client(MAX_JSON_BODY_BYTES=len(NOT_JSON) - 1)
    model_id = trained(make_client(), GOOD_JOB)
    headers = {"Content-Type": "application/json"}
    response = client.post(path.format(id=model_id), data=NOT_JSON, headers=headers)
    assert response.status_code == 413, response.get_data(as_text=True)
    body = response.get_json()
    message = body["error"] if path.startswith("/v2") else assert_error(response, 413)["message"]
    assert "MAX_JSON_BODY_BYTES" in message and f"{len(NOT_JSON) - 1:,}" in message
    assert hint in message


def test_json_bodies_within_the_cap_are_read_as_before(make_client):
    client = make_client(MAX_JSON_BODY_BYTES=len(json.dumps(GOOD_JOB)))
    assert client.post("/v1/jobs?dry_run=true", json=GOOD_JOB).status_code == 200
    assert_error(client.post("/v1/jobs", data=NOT_JSON[:100], content_type="application/json"), 400)


def test_binary_v2_bodies_past_the_biggest_valid_request_are_413(make_client):
    client = make_client(PREDICT_MAX_ROWS=3)
    model_id = trained(client, GOOD_JOB)
    rows = np.zeros((4, 2))
    header = json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP64", "shape": [4, 2],
                     "parameters": {"binary_data_size": rows.nbytes}}]}
    ).encode()  # fmt: skip
    body = header + b" " * (64 * 1024 + 3 * 2 * 8) + rows.tobytes()
    headers = {"Inference-Header-Content-Length": str(len(header))}
    response = client.post(f"/v2/models/{model_id}/infer", data=body, headers=headers)
    assert response.status_code == 413, response.get_data(as_text=True)
    assert "PREDICT_MAX_ROWS" in response.get_json()["error"]
    # The same request within the cap is read, and refused for its rows as before.
    response = client.post(f"/v2/models/{model_id}/infer", data=header + rows.tobytes(),
                           headers=headers)  # fmt: skip
    assert response.status_code == 400 and "1 to 3 rows" in response.get_json()["error"]
    assert client.post(f"/v2/models/{model_id}/infer", json=v2_request([[0, 1]])).status_code == 200


def stall(port: int, path: str, content_type: str, first_bytes: bytes) -> socket.socket:
    """A connection that announces a 100 MB body, sends ``first_bytes`` of it and stops."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: 100000000\r\n\r\n"
    )
    sock.sendall(head.encode() + first_bytes)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON body the server sent on a stalled connection."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read())


JSON = {"Content-Type": "application/json"}


def test_stalled_bodies_get_408_and_do_not_starve_the_api(redis_url):
    # The default process count; 16 stalled uploads are twice the threads both used to have.
    env = {"WEB_CONCURRENCY": "2", "BODY_TIMEOUT_SECONDS": "2", "MAX_JSON_BODY_BYTES": "100000"}
    with serve_api(redis_url, **env) as base:
        port = urlparse(base).port
        csv = [stall(port, "/v1/datasets?target=y", "text/csv", b"x,y\n1,") for _ in range(12)]
        big = [stall(port, "/v1/jobs", "application/json", b'{"a') for _ in range(4)]
        for _ in range(3):
            assert requests.get(f"{base}/healthz", timeout=15).status_code == 200
            assert requests.get(f"{base}/v1/jobs", timeout=15).status_code == 200
        for sock in csv:
            status, body = answer(sock)
            assert status == 408 and "BODY_TIMEOUT_SECONDS" in body["message"]
        for sock in big:
            status, body = answer(sock)
            assert status == 413 and "MAX_JSON_BODY_BYTES" in body["message"]
        for sock in csv + big:
            sock.close()
        # A body of undeclared length (chunked) is read up to the cap, and refused past it.
        url = f"{base}/v1/jobs?dry_run=true"
        small = iter([json.dumps(GOOD_JOB).encode()])
        response = requests.post(url, data=small, headers=JSON, timeout=15)
        assert response.status_code == 200 and response.json()["valid"]
        big = (b" " * 10_000 for _ in range(20))
        response = requests.post(url, data=big, headers=JSON, timeout=15)
        assert response.status_code == 413 and "MAX_JSON_BODY_BYTES" in response.json()["message"]
