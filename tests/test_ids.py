"""Ids are 32 lowercase hex digits; anything else is refused before it can name a Redis key.

``<id>:spec`` or ``<id>:array:X`` would otherwise reach another key of the same resource (a
500 from WRONGTYPE or from parsing npy bytes as JSON, and a probe of another tenant's ids).
The Flask test client drives the real app against the real Redis of the session.
"""

import re

import pytest

import store
from service.ids import PATTERN
from tests.support.checks import assert_error, stored_keys
from tests.support.jobs import GOOD_JOB

XOR_DATA = GOOD_JOB["data"]
# Suffixes that turn a real id into the name of another of its keys, or into no id at all.
CRAFTED = [":spec", ":array:X", ":history", ":meta", "%0A", "%3Aspec"]


@pytest.fixture
def job_id(client) -> str:
    response = client.post("/v1/jobs", json=GOOD_JOB)
    assert response.status_code == 202
    return response.get_json()["id"]


@pytest.fixture
def dataset_id(client) -> str:
    response = client.post("/v1/datasets", json=XOR_DATA)
    assert response.status_code == 201
    return response.get_json()["id"]


def test_the_ids_the_store_makes_have_the_one_format():
    assert re.fullmatch(PATTERN, store.new_id())
    assert re.fullmatch(PATTERN, store.dataset_id_for("alice", "0" * 64))


V1_ROUTES = [
    ("get", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("get", "/v1/jobs/{id}/history"),
    ("get", "/v1/models/{id}"),
    ("delete", "/v1/models/{id}"),
    ("get", "/v1/models/{id}/weights"),
    ("get", "/v1/models/{id}/onnx"),
    ("post", "/v1/models/{id}/predict"),
]


@pytest.mark.parametrize("suffix", CRAFTED)
@pytest.mark.parametrize(("method", "url"), V1_ROUTES)
def test_a_crafted_job_or_model_id_is_404(client, redis_conn, job_id, method, url, suffix):
    keys = stored_keys(redis_conn)
    response = client.open(url.format(id=job_id + suffix), method=method, json={"inputs": [[0]]})
    assert_error(response, 404)
    assert stored_keys(redis_conn) == keys


@pytest.mark.parametrize("suffix", CRAFTED)
@pytest.mark.parametrize("method", ["get", "delete"])
def test_a_crafted_dataset_id_is_404_and_deletes_nothing(
    client, redis_conn, dataset_id, method, suffix
):
    keys = stored_keys(redis_conn)
    assert_error(client.open(f"/v1/datasets/{dataset_id}{suffix}", method=method), 404)
    assert stored_keys(redis_conn) == keys
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 200


@pytest.mark.parametrize("bad", ["ABCDEF" + "0" * 26, "0" * 31, "0" * 33, "g" * 32])
def test_ids_of_the_wrong_case_or_length_are_404(client, bad):
    assert_error(client.get(f"/v1/jobs/{bad}"), 404)
    assert_error(client.get(f"/v1/datasets/{bad}"), 404)


@pytest.mark.parametrize("suffix", CRAFTED[:3])
@pytest.mark.parametrize("path", ["", "/ready", "/versions/1", "/infer"])
def test_a_crafted_id_under_v2_is_404_in_the_protocol_shape(client, job_id, path, suffix):
    method = "post" if path == "/infer" else "get"
    response = client.open(f"/v2/models/{job_id}{suffix}{path}", method=method, json={})
    assert response.status_code == 404, response.get_data(as_text=True)
    assert set(response.get_json()) == {"error"}


@pytest.mark.parametrize("suffix", [":array:X", ":array:y", "\n", "x"])
def test_a_crafted_dataset_id_in_a_job_is_422(client, redis_conn, dataset_id, suffix):
    job = {key: value for key, value in GOOD_JOB.items() if key != "data"}
    keys = stored_keys(redis_conn)
    body = assert_error(
        client.post("/v1/jobs", json={**job, "dataset_id": dataset_id + suffix}), 422, "dataset_id"
    )
    assert "32 lowercase hex digits" in body["errors"]["dataset_id"][0]
    assert stored_keys(redis_conn) == keys
    assert client.post("/v1/jobs", json={**job, "dataset_id": dataset_id}).status_code == 202


def test_a_crafted_cursor_is_422(client, job_id):
    body = assert_error(client.get("/v1/jobs", query_string={"cursor": f"{job_id}:spec"}), 422)
    assert "32 lowercase hex digits" in body["errors"]["cursor"][0]
    assert client.get("/v1/jobs", query_string={"cursor": job_id}).status_code == 200
