"""Answers stay bounded: big weights are refused as JSON and served as .npz; histories come in
pages with a Link to the next one. The Flask test client drives the app against the session's
real Redis; models are trained by the worker's task code.
"""

import io
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

import store
from service import create_app
from service.schemas import HISTORY_MAX_ROWS, HISTORY_PAGE_ROWS
from tests.test_api_validation import GOOD_JOB, assert_error
from tests.test_prediction_limits import trained

XOR_PARAMS = 2 * 2 + 2 + 2 * 1 + 1


@pytest.fixture
def make_client(redis_url, monkeypatch):
    """Factory: a test client of an app with these config overrides."""
    monkeypatch.setenv("REDIS_URL", redis_url)  # for train_job, run in this process

    def make(**config):
        return create_app({"REDIS_URL": redis_url, "TESTING": True, **config}).test_client()

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
