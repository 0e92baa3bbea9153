"""The lean prediction path (service/prediction.py) answers what the general one did.

Well-formed bodies take orjson's fast path; everything else is read again by the general path,
so each malformed body keeps its own 4xx. The answers are the engine's outputs, float32 ones
written as Python writes them; outputs whose sum overflows but are all finite are answered;
predictions have their own rate limit in place of RATE_LIMIT.
"""

import json

import numpy as np
import pytest

from backprop import Model
from service.models import predict as predict_view
from store import load_model_bytes
from tests.support.checks import assert_error
from tests.support.jobs import SOFTMAX_JOB, edited, linear_job, trained, v2_request


def stored_model(redis_conn, model_id: str) -> Model:
    return Model.from_bytes(load_model_bytes(redis_conn, model_id))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_are_the_engines_written_as_python_writes_them(client, redis_conn, dtype):
    job = edited(*SOFTMAX_JOB_EDITS) if dtype == "float64" else edited(*SOFTMAX_JOB_EDITS, F32)
    model_id = trained(client, job)
    rows = [[0.5, 1.25], [4, 4], [9, 0], [1e-3, -7]]
    response = client.post(f"/v1/models/{model_id}/predict", json={"inputs": rows})
    assert response.status_code == 200, response.get_json()
    model = stored_model(redis_conn, model_id)
    expected = model.predict(np.array(rows, np.float64))
    # The same text json.dumps writes for the same floats (float32 widened to float64 first).
    body = json.loads(response.get_data())
    assert body == {
        "outputs": json.loads(json.dumps(expected.tolist())),
        "labels": model.labels_from(expected).tolist(),
    }
    assert response.mimetype == "application/json"


SOFTMAX_JOB_EDITS = [(key, SOFTMAX_JOB[key]) for key in ("network", "training", "data")]
F32 = ("network.dtype", "float32")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ('{"inputs": [[1, true]]}', 422, "inputs"),
        ('{"inputs": [[1, 1e400]]}', 422, "inputs"),
        ('{"inputs": [[1, NaN]]}', 422, "inputs"),
        ('{"inputs": [[1, 2], [3]]}', 422, "inputs"),
        ('{"inputs": [[1, "2"]]}', 422, "inputs"),
        ('{"inputs": [[1, 2]], "extra": 1}', 422, "extra"),
        ('{"inputs": []}', 422, "inputs"),
        ('{"inputs": [[]]}', 422, "inputs"),
        ('{"inputs": [[1, 2]] ', 400, None),
        ("[[1, 2]]", 422, "body"),
        ('{"inputs": [[1, 2], [3, 4], [5, 6], [7, 8]]}', 422, "inputs"),
        ('{"inputs": ' + "[" * 5000 + "]" * 5000 + "}", 400, None),
    ],
)
def test_malformed_bodies_keep_their_own_answer(make_app, body, status, field):
    client = make_app(PREDICT_MAX_ROWS=3).test_client()
    model_id = trained(client, linear_job())
    response = client.post(
        f"/v1/models/{model_id}/predict", data=body, content_type="application/json"
    )
    assert_error(response, status, field)


def test_a_body_that_is_not_json_is_415(client):
    model_id = trained(client, linear_job())
    response = client.post(
        f"/v1/models/{model_id}/predict", data='{"inputs": [[1, 2]]}', content_type="text/plain"
    )
    assert_error(response, 415)


def test_finite_outputs_whose_sum_overflows_are_answered(client):
    model_id = trained(client, linear_job())
    big = 4e307  # 4·(x0 + x1) = 1.6e308 per row: each finite, their sum is not
    response = client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[big, 0]] * 2})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["outputs"] == [[pytest.approx(4 * big, rel=1e-6)]] * 2
    response = client.post(f"/v2/models/{model_id}/infer", json=v2_request([[big, 0], [big, 0]]))
    assert response.status_code == 200, response.get_json()


def test_the_predict_view_carries_no_wrappers():
    # blp.doc and blp.alt_response each wrap a view in a call through ensure_sync, and a
    # flask-limiter decorator checks each request a second time; predict keeps their OpenAPI
    # entries (test_openapi) and its own rate limit (below) without them.
    assert predict_view.__name__ == "predict"
    assert not hasattr(predict_view, "__wrapped__")


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_predictions_have_their_own_rate_limit(make_app, api):
    app = make_app(RATE_LIMIT="2/minute", RATE_LIMIT_PREDICT="4/minute")
    client = app.test_client()
    model_id = trained(client, linear_job())
    if api == "v1":
        url, body = f"/v1/models/{model_id}/predict", {"inputs": [[1, 2]]}
    else:
        url, body = f"/v2/models/{model_id}/infer", v2_request([[1, 2]])
    codes = [client.post(url, json=body).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 200]  # past RATE_LIMIT's 2, within RATE_LIMIT_PREDICT's 4
    refused = client.post(url, json=body)
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
    # Everything else keeps to RATE_LIMIT.
    assert client.get(f"/v1/models/{model_id}").status_code == 200
    assert client.get(f"/v1/models/{model_id}").status_code == 200
    assert client.get(f"/v1/models/{model_id}").status_code == 429
