"""Predictions on /v1 and /v2 keep to the same limits, and no response holds NaN or Infinity.

Outputs that overflow the model's dtype are a 422 naming the inputs (JSON has no Infinity);
PREDICT_MAX_ROWS bounds both APIs. The Flask test client drives the real app against the real
Redis of the session; models are trained by the worker's own task code in this process.
"""

import json

import pytest

import store
from service import create_app
from tests.support.checks import assert_error
from tests.support.jobs import GOOD_JOB, linear_job, trained, v2_request

MAX_ROWS = 3
# linear_job doubles every input twice: 1e300 overflows float32 on the way in, 1e308
# overflows float64 in the hidden layer.
OVERFLOWING = {"float32": 1e300, "float64": 1e308}


def strict_json(response):
    """The body parsed as standard JSON: NaN, Infinity and -Infinity are refused."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(response.get_data(as_text=True), parse_constant=refuse)


@pytest.fixture
def app_config() -> dict:
    """The ``app`` and ``client`` fixtures here answer at most MAX_ROWS rows."""
    return {"PREDICT_MAX_ROWS": MAX_ROWS}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_that_overflow_are_422_naming_the_inputs(client, dtype):
    model_id = trained(client, linear_job(dtype))
    big = OVERFLOWING[dtype]

    ok = client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[1, 2]]})
    assert strict_json(ok)["outputs"] == [[pytest.approx(12.0, rel=1e-6)]]
    response = client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[1, 2], [big, 0]]})
    body = assert_error(response, 422, "inputs")
    assert f"overflow the model's {dtype} range" in body["errors"]["inputs"][0]
    strict_json(response)

    ok = client.post(f"/v2/models/{model_id}/infer", json=v2_request([[1, 2]]))
    assert strict_json(ok)["outputs"][0]["data"] == [pytest.approx(12.0, rel=1e-6)]
    response = client.post(f"/v2/models/{model_id}/infer", json=v2_request([[big, 0]]))
    assert response.status_code == 422
    error = strict_json(response)["error"]
    assert "'input'" in error and f"overflow the model's {dtype} range" in error


def test_v2_keeps_to_predict_max_rows_like_v1(client):
    model_id = trained(client, linear_job("float64"))
    rows = [[1, 2]] * MAX_ROWS
    assert client.post(f"/v2/models/{model_id}/infer", json=v2_request(rows)).status_code == 200
    response = client.post(f"/v2/models/{model_id}/infer", json=v2_request(rows + [[1, 2]]))
    assert response.status_code == 400
    assert f"1 to {MAX_ROWS} rows" in response.get_json()["error"]
    response = client.post(f"/v1/models/{model_id}/predict", json={"inputs": rows + [[1, 2]]})
    assert_error(response, 422, "inputs")


def test_v2_predicts_in_batches_of_predict_batch_rows_like_v1(redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    client = create_app(
        {"REDIS_URL": redis_url, "TESTING": True, "PREDICT_BATCH_ROWS": 2}
    ).test_client()
    model_id = trained(client, GOOD_JOB)
    rows = [[0, 0], [0, 1], [1, 0], [1, 1], [0.5, 0.5]]
    v1 = client.post(f"/v1/models/{model_id}/predict", json={"inputs": rows}).get_json()
    v2 = client.post(f"/v2/models/{model_id}/infer", json=v2_request(rows)).get_json()
    assert v2["outputs"][0]["data"] == [value for row in v1["outputs"] for value in row]


def test_non_finite_numbers_anywhere_are_written_as_null(app, client, redis_conn):
    assert app.json.dumps({"a": float("nan"), "b": [1.5, float("-inf")]}) == (
        '{"a": null, "b": [1.5, null]}'
    )
    job_id = client.post("/v1/jobs", json=GOOD_JOB).get_json()["id"]
    # What a worker stores for a run whose validation loss overflowed.
    progress = {"epoch": 1, "epochs": 5, "loss": 0.5, "val_loss": float("inf"), "eta_seconds": 1}
    store.update_job(redis_conn, job_id, progress=progress)
    body = strict_json(client.get(f"/v1/jobs/{job_id}"))
    assert body["progress"] == {**progress, "val_loss": None}
