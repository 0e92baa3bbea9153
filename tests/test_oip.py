"""The Open Inference Protocol at /v2, spoken by the real tritonclient to gunicorn.

An rq worker subprocess trains the models through /v1/jobs; every /v2 output is checked against
/v1 predict for the same rows. Errors are the protocol's ``{"error": "..."}``, not /v1's body.
"""

import json
from collections.abc import Iterator

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.support.jobs import LONG_JOB
from tests.support.live import Api

rng = np.random.default_rng(11)
CLASSIFIER_X = rng.normal(size=(24, 3))
CLASSIFIER_JOB = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "softmax"}],
        "seed": 2,
    },
    "training": {
        "loss": "categorical_crossentropy",
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "epochs": 50,
        "batch_size": None,
    },
    "data": {
        "X": CLASSIFIER_X.tolist(),
        "y": np.eye(2)[(CLASSIFIER_X.sum(axis=1) > 0).astype(int)].tolist(),
    },
}
REGRESSION_X = rng.uniform(-1, 1, size=(24, 2))
REGRESSION_JOB = {
    "network": {
        "layers": [{"units": 5, "activation": "relu"}, {"units": 1, "activation": "linear"}],
        "seed": 4,
        "dtype": "float32",
    },
    "training": {
        "loss": "mse",
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "epochs": 50,
        "batch_size": 8,
    },
    "data": {"X": REGRESSION_X.tolist(), "y": (REGRESSION_X @ [[1.5], [-0.5]] + 0.25).tolist()},
}
# name: (job, datatype, NumPy dtype, n_inputs, n_outputs)
MODELS = {
    "classifier": (CLASSIFIER_JOB, "FP64", np.float64, 3, 2),
    "regression": (REGRESSION_JOB, "FP32", np.float32, 2, 1),
}
HEADER_LENGTH = "Inference-Header-Content-Length"
UNKNOWN_ID = "0123456789abcdef0123456789abcdef"


def rows(name: str, n: int = 7) -> np.ndarray:
    """Rows the model was not trained on, in the model's dtype."""
    _, _, dtype, n_inputs, _ = MODELS[name]
    return np.random.default_rng(n).normal(size=(n, n_inputs)).astype(dtype)


def v1_outputs(api: Api, model_id: str, X: np.ndarray) -> np.ndarray:
    response = api.predict(model_id, X.tolist())
    assert response.status_code == 200, response.text
    return np.array(response.json()["outputs"])


def assert_same_outputs(got: np.ndarray, expected: np.ndarray, dtype) -> None:
    """/v2 against /v1: same engine, same rows, so float32 outputs match to the bit."""
    assert got.dtype == dtype and got.shape == expected.shape
    if dtype == np.float32:
        np.testing.assert_array_equal(got, expected.astype(np.float32))
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def assert_oip_error(response: requests.Response, status: int) -> str:
    """The protocol's error body, ``{"error": message}``, with this status."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"] and body["error"], body
    return body["error"]


def body_for(shape, datatype="FP64", **fields) -> dict:
    """An infer request with one tensor; ``fields`` add to it or replace its name."""
    return {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, **fields}]}


def raw_infer(api: Api, model_id: str, data: bytes, **headers) -> requests.Response:
    return api.session.post(
        f"{api.base_url}/v2/models/{model_id}/infer", data=data, headers=headers, timeout=10
    )


@pytest.fixture
def triton(module_live_server: str) -> Iterator[httpclient.InferenceServerClient]:
    """The tritonclient HTTP client of the module's gunicorn."""
    client = httpclient.InferenceServerClient(url=module_live_server.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture
def models(api: Api, start_worker) -> dict[str, str]:
    """``{name: model id}`` of MODELS, trained by a worker through /v1/jobs."""
    start_worker()
    ids = {name: api.submit(job) for name, (job, *_) in MODELS.items()}
    for job_id in ids.values():
        assert api.wait_until_done(job_id)["status"] == "finished"
    return ids


def test_server_is_live_and_ready_and_describes_itself(api, triton):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert api.get("/v2/health/live").json() == {"live": True}
    assert api.get("/v2/health/ready").json() == {"ready": True}

    metadata = triton.get_server_metadata()
    assert metadata == api.get("/v2").json()
    assert metadata["name"] == "backprop-service" and metadata["version"]
    assert metadata["extensions"] == ["binary_tensor_data"]


def test_model_metadata_and_readiness(api, triton, models):
    for name, model_id in models.items():
        _, datatype, _, n_inputs, n_outputs = MODELS[name]
        expected = {
            "name": model_id,
            "versions": ["1"],
            "platform": "backprop",
            "inputs": [{"name": "input", "datatype": datatype, "shape": [-1, n_inputs]}],
            "outputs": [{"name": "output", "datatype": datatype, "shape": [-1, n_outputs]}],
        }
        assert triton.get_model_metadata(model_id) == expected
        assert triton.get_model_metadata(model_id, model_version="1") == expected
        assert triton.is_model_ready(model_id)
        assert triton.is_model_ready(model_id, model_version="1")
        assert api.get(f"/v2/models/{model_id}/ready").json() == {"name": model_id, "ready": True}

    assert not triton.is_model_ready(UNKNOWN_ID)
    assert not triton.is_model_ready(models["classifier"], model_version="2")


@pytest.mark.parametrize("binary_input", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_output", [True, False], ids=["binary-out", "json-out"])
def test_tritonclient_infer_equals_v1_predict(api, triton, models, binary_input, binary_output):
    for name, model_id in models.items():
        _, datatype, dtype, _, _ = MODELS[name]
        X = rows(name)
        tensor = httpclient.InferInput("input", list(X.shape), datatype)
        tensor.set_data_from_numpy(X, binary_data=binary_input)
        wanted = httpclient.InferRequestedOutput("output", binary_data=binary_output)

        result = triton.infer(model_id, [tensor], outputs=[wanted], request_id=f"{name}-42")

        response = result.get_response()
        assert response["id"] == f"{name}-42"
        assert (response["model_name"], response["model_version"]) == (model_id, "1")
        (output,) = response["outputs"]
        assert (output["name"], output["datatype"]) == ("output", datatype)
        assert ("data" in output) is not binary_output
        assert ("binary_data_size" in output.get("parameters", {})) is binary_output
        assert_same_outputs(result.as_numpy("output"), v1_outputs(api, model_id, X), dtype)


def test_versioned_url_and_default_outputs(api, triton, models):
    for name, model_id in models.items():
        _, datatype, dtype, _, _ = MODELS[name]
        X = rows(name, n=1)
        tensor = httpclient.InferInput("input", list(X.shape), datatype)
        tensor.set_data_from_numpy(X)

        # No outputs named: the client asks for all of them as binary data.
        result = triton.infer(model_id, [tensor], model_version="1")

        assert "id" not in result.get_response()
        assert_same_outputs(result.as_numpy("output"), v1_outputs(api, model_id, X), dtype)
        with pytest.raises(InferenceServerException) as error:
            triton.infer(model_id, [tensor], model_version="2")
        assert error.value.status() == "404"


def test_unknown_model_and_wrong_shape_raise_in_the_client(triton, models):
    X = rows("classifier")
    tensor = httpclient.InferInput("input", list(X.shape), "FP64")
    tensor.set_data_from_numpy(X)
    with pytest.raises(InferenceServerException) as error:
        triton.infer(UNKNOWN_ID, [tensor])
    assert error.value.status() == "404" and UNKNOWN_ID in error.value.message()
    with pytest.raises(InferenceServerException) as error:
        triton.get_model_metadata(UNKNOWN_ID)
    assert error.value.status() == "404"

    wide = np.zeros((2, 5))
    tensor = httpclient.InferInput("input", list(wide.shape), "FP64")
    tensor.set_data_from_numpy(wide)
    with pytest.raises(InferenceServerException) as error:
        triton.infer(models["classifier"], [tensor])
    assert error.value.status() == "400" and "5 columns" in error.value.message()


def test_json_request_by_hand(api, models):
    model_id = models["classifier"]
    X = rows("classifier", n=3)
    # Nested by rows, and without a Content-Type, as some clients send it.
    body = {"id": "by-hand", **body_for(list(X.shape), "FP64", data=X.tolist())}

    response = api.session.post(
        f"{api.base_url}/v2/models/{model_id}/infer", data=json.dumps(body), timeout=10
    )

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert HEADER_LENGTH not in response.headers
    answer = response.json()
    assert answer["id"] == "by-hand"
    (output,) = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("output", "FP64", [3, 2])
    outputs = np.array(output["data"]).reshape(3, 2)  # flat, row-major
    assert_same_outputs(outputs, v1_outputs(api, model_id, X), np.float64)


def test_binary_request_by_hand(api, models):
    model_id = models["regression"]
    X = rows("regression", n=5)
    raw = X.astype("<f4").tobytes()
    request = body_for(list(X.shape), "FP32", parameters={"binary_data_size": len(raw)})
    request["parameters"] = {"binary_data_output": True}
    header = json.dumps(request).encode()

    response = api.session.post(
        f"{api.base_url}/v2/models/{model_id}/infer",
        data=header + raw,
        headers={HEADER_LENGTH: str(len(header))},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    length = int(response.headers[HEADER_LENGTH])
    answer = json.loads(response.content[:length])
    (output,) = answer["outputs"]
    assert (output["datatype"], output["shape"]) == ("FP32", [5, 1])
    size = output["parameters"]["binary_data_size"]
    assert size == len(response.content) - length == 5 * 4
    outputs = np.frombuffer(response.content[length:], "<f4").reshape(5, 1)
    assert_same_outputs(outputs, v1_outputs(api, model_id, X), np.float32)


def test_integer_input_is_cast_like_v1(api, models):
    model_id = models["classifier"]
    X = np.array([[1, -2, 3], [0, 4, -1]], dtype=np.int32)

    response = api.post(
        f"/v2/models/{model_id}/infer", body_for(list(X.shape), "INT32", data=X.tolist())
    )

    assert response.status_code == 200, response.text
    outputs = np.array(response.json()["outputs"][0]["data"]).reshape(2, 2)
    assert_same_outputs(outputs, v1_outputs(api, model_id, X), np.float64)


ROW = [[0.5, 1.0, -1.0]]
GOOD = body_for([1, 3], data=ROW)
# case: (request body, words the error names)
BAD_INFER_BODIES = {
    "columns": (body_for([1, 5], data=[0.0] * 5), "5 columns"),
    "three-dimensions": (body_for([1, 1, 3], data=ROW), "[rows, 3]"),
    "too-few-values": (body_for([2, 3], data=ROW), "has 3 values"),
    "no-rows": (body_for([0, 3], data=[]), "rows"),
    "strings": (body_for([1, 3], data=["0.5", "1", "2"]), "numbers only"),
    "booleans": (body_for([1, 3], data=[True, 1.0, 2.0]), "numbers only"),
    "nan": (body_for([1, 3], data=[float("nan"), 1.0, 2.0]), "NaN"),
    "floats-as-int32": (body_for([1, 3], "INT32", data=[0.5, 1, 2]), "integers only"),
    "int8-overflow": (body_for([1, 3], "INT8", data=[300, 1, 2]), "out of range"),
    "bytes-datatype": (body_for([1, 3], "BYTES", data=ROW), "datatype"),
    "no-data": (body_for([1, 3]), "needs data"),
    "unknown-input": (body_for([1, 3], name="x", data=ROW), "'x'"),
    "two-inputs": ({"inputs": 2 * GOOD["inputs"]}, "one tensor"),
    "no-inputs": ({"outputs": [{"name": "output"}]}, "inputs"),
    "unknown-output": ({**GOOD, "outputs": [{"name": "labels"}]}, "'labels'"),
    "classification": (
        {**GOOD, "outputs": [{"name": "output", "parameters": {"classification": 2}}]},
        "classification",
    ),
    "numeric-id": ({"id": 7, **GOOD}, "id must be a string"),
    "not-an-object": ([1, 2, 3], "object"),
}


def test_bad_infer_requests_are_400(api, models):
    # One trained model serves the whole table: a worker per case would cost more than the cases.
    for case, (body, words) in BAD_INFER_BODIES.items():
        data = json.dumps(body).encode()  # json, unlike requests, writes NaN

        response = raw_infer(
            api, models["classifier"], data, **{"Content-Type": "application/json"}
        )

        assert response.status_code == 400, (case, response.text)
        assert words in assert_oip_error(response, 400), case


def test_bad_bodies_and_binary_framing(api, models):
    model_id = models["classifier"]
    X = np.zeros((2, 3))
    good = body_for(list(X.shape), "FP64", parameters={"binary_data_size": X.nbytes})
    header = json.dumps(good).encode()

    short = raw_infer(api, model_id, header + X.tobytes()[:-8], **{HEADER_LENGTH: str(len(header))})
    assert "follow the header" in assert_oip_error(short, 400)
    past_end = raw_infer(api, model_id, header, **{HEADER_LENGTH: str(len(header) + 1)})
    assert HEADER_LENGTH in assert_oip_error(past_end, 400)
    wrong_size = json.dumps(
        body_for(list(X.shape), "FP64", parameters={"binary_data_size": 8})
    ).encode()
    response = raw_infer(
        api, model_id, wrong_size + b"\0" * 8, **{HEADER_LENGTH: str(len(wrong_size))}
    )
    assert "must be 48" in assert_oip_error(response, 400)
    stray = json.dumps(body_for(list(X.shape), "FP64", data=[0.0] * 6)).encode()
    response = raw_infer(api, model_id, stray + b"\0" * 8, **{HEADER_LENGTH: str(len(stray))})
    assert "no input names its size" in assert_oip_error(response, 400)

    assert "not valid JSON" in assert_oip_error(raw_infer(api, model_id, b"{nope"), 400)
    as_text = raw_infer(api, model_id, json.dumps(good).encode(), **{"Content-Type": "text/csv"})
    assert_oip_error(as_text, 415)


UNKNOWN_URLS = [
    ("GET", "/v2/models/{unknown}", 404),
    ("GET", "/v2/models/{unknown}/ready", 404),
    ("POST", "/v2/models/{unknown}/infer", 404),
    ("GET", "/v2/models/{model}/versions/2", 404),
    ("POST", "/v2/models/{model}/versions/2/infer", 404),
    ("GET", "/v2/models/{model}/infer", 405),
    ("GET", "/v2/models/{model}/config", 404),
    ("GET", "/v2/no-such-resource", 404),
]


def test_unknown_models_and_urls_answer_in_the_protocol_shape(api, models):
    for method, path, status in UNKNOWN_URLS:
        url = path.format(unknown=UNKNOWN_ID, model=models["classifier"])

        response = api.session.request(method, api.base_url + url, json=GOOD, timeout=10)

        assert response.status_code == status, (method, path, response.text)
        assert_oip_error(response, status)


def test_model_still_training_is_409(api):
    job_id = api.submit(LONG_JOB)  # no worker runs, so it stays queued

    assert "queued" in assert_oip_error(api.get(f"/v2/models/{job_id}"), 409)
    assert_oip_error(api.get(f"/v2/models/{job_id}/ready"), 409)
    infer = api.post(f"/v2/models/{job_id}/infer", body_for([1, 1], data=[0.5]))
    assert_oip_error(infer, 409)
