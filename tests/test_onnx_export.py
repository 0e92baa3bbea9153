"""Exports of a trained model, over HTTP from gunicorn: ONNX that onnxruntime runs like /v1
predict, for every activation and both dtypes, and the weights as one .npz file. Standardising
models are exported from the engine directly.
"""

import io

import numpy as np
import onnx
import onnxruntime
import pytest

import backprop
import store
from backprop.activations import ACTIVATIONS, Activation
from service import create_app, onnx_export
from tests.support.checks import assert_error
from tests.support.jobs import LONG_JOB
from tests.support.live import Api

DTYPES = ("float32", "float64")
# activation: the ONNX operator its layers become. The export test runs for every activation
# of the engine's registry, so one added there without an ONNX form fails it.
OPERATORS = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "Relu",
    "leaky_relu": "LeakyRelu",
    "elu": "Elu",
    "linear": "Identity",
    "softmax": "Softmax",
}
# Float64 models build these from Relu, Min, Mul, Add (and Exp) to keep a float64 alpha.
FLOAT64_PRIMITIVES = {"leaky_relu": "Min", "elu": "Exp"}
# Float32 matches /v1 within 1e-5, as the issue asks; float64 to the last few bits.
TOLERANCES = {"float32": 1e-5, "float64": 1e-12}
ELEMENT_TYPES = {"float32": onnx.TensorProto.FLOAT, "float64": onnx.TensorProto.DOUBLE}

rng = np.random.default_rng(5)
X_TRAIN = rng.normal(size=(30, 3))
CLASSES = np.eye(3)[rng.integers(0, 3, size=30)]


def job_for(activation: str, dtype: str) -> dict:
    """A 3-5-4-2 network of ``activation`` (tanh, then a 3-way softmax, for softmax).

    The first hidden layer sets ``alpha`` where the activation has one; the others use the
    default, so both reach the export.
    """
    if activation == "softmax":
        layers = [{"units": 5, "activation": "tanh"}, {"units": 3, "activation": "softmax"}]
        loss, y = "categorical_crossentropy", CLASSES
    else:
        layers = [{"units": u, "activation": activation} for u in (5, 4, 2)]
        if activation in ("leaky_relu", "elu"):
            layers[0]["alpha"] = 0.3
        loss, y = "mse", np.tanh(X_TRAIN[:, :2] - X_TRAIN[:, 2:])
    return {
        "network": {"layers": layers, "seed": 8, "dtype": dtype},
        "training": {
            "loss": loss,
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": 30,
            "batch_size": 10,
        },
        "data": {"X": X_TRAIN.tolist(), "y": y.tolist()},
    }


def train(api: Api, start_worker, jobs: dict) -> dict:
    """``{key: model id}`` for ``{key: job}``, trained by a worker subprocess."""
    start_worker()
    ids = {key: api.submit(job) for key, job in jobs.items()}
    for job_id in ids.values():
        assert api.wait_until_done(job_id)["status"] == "finished"
    return ids


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_onnxruntime_runs_the_export_like_v1_predict(api, start_worker, activation):
    ids = train(api, start_worker, {dtype: job_for(activation, dtype) for dtype in DTYPES})

    for dtype, model_id in ids.items():
        response = api.get(f"/v1/models/{model_id}/onnx")
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert f"{model_id}.onnx" in response.headers["Content-Disposition"]

        proto = onnx.load_from_string(response.content)
        onnx.checker.check_model(proto, full_check=True)
        n_outputs = 3 if activation == "softmax" else 2
        (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
        for value, name, width in ((graph_input, "input", 3), (graph_output, "output", n_outputs)):
            assert value.name == name
            assert value.type.tensor_type.elem_type == ELEMENT_TYPES[dtype]
            assert [d.dim_value for d in value.type.tensor_type.shape.dim] == [0, width]
        operators = {node.op_type for node in proto.graph.node}
        assert activation in OPERATORS, f"name the ONNX operator {activation} becomes in OPERATORS"
        if dtype == "float64" and activation in FLOAT64_PRIMITIVES:
            assert FLOAT64_PRIMITIVES[activation] in operators
        else:
            assert OPERATORS[activation] in operators

        X = np.random.default_rng(1).normal(size=(9, 3)).astype(dtype)
        session = onnxruntime.InferenceSession(response.content, providers=["CPUExecutionProvider"])
        (outputs,) = session.run(["output"], {"input": X})
        predicted = api.predict(model_id, X.tolist())
        assert predicted.status_code == 200, predicted.text
        assert outputs.dtype == dtype and outputs.shape == (9, n_outputs)
        expected = predicted.json()["outputs"]
        np.testing.assert_allclose(outputs, expected, rtol=0, atol=TOLERANCES[dtype])


def test_npz_weights_equal_the_json_weights(api, start_worker):
    ids = train(api, start_worker, {dtype: job_for("elu", dtype) for dtype in DTYPES})

    for dtype, model_id in ids.items():
        url = f"/v1/models/{model_id}/weights"
        layers = api.get(url).json()
        assert api.get(url, params={"format": "json"}).json() == layers  # the default

        response = api.get(url, params={"format": "npz"})

        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert f"{model_id}.npz" in response.headers["Content-Disposition"]
        with np.load(io.BytesIO(response.content), allow_pickle=False) as arrays:
            assert sorted(arrays.files) == ["W0", "W1", "W2", "b0", "b1", "b2"]
            for i, layer in enumerate(layers):
                for key in ("W", "b"):
                    array = arrays[f"{key}{i}"]
                    assert array.dtype == dtype
                    assert array.tolist() == layer[key]  # exactly, value for value


def test_export_errors_are_the_v1_error_body(api):
    unknown = "0123456789abcdef0123456789abcdef"
    assert_error(api.get(f"/v1/models/{unknown}/onnx"), 404)
    assert_error(api.get(f"/v1/models/{unknown}/weights", params={"format": "npz"}), 404)

    job_id = api.submit(LONG_JOB)  # no worker runs, so it stays queued
    assert_error(api.get(f"/v1/models/{job_id}/onnx"), 409)
    bad_format = assert_error(api.get(f"/v1/models/{job_id}/weights?format=csv"), 422)
    assert "format" in bad_format["errors"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_standardising_model_exports_its_statistics(dtype):
    job = job_for("elu", dtype)
    spec = {"network": job["network"], "training": job["training"]}
    spec["preprocessing"] = {"standardize": True}
    X = X_TRAIN * [1.0, 100.0, 0.01] + [5.0, -300.0, 0.0]  # columns far from standardised
    model, _ = backprop.train(spec, X, job["data"]["y"])
    blob = onnx_export.to_bytes(model)

    session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
    rows = X[:9].astype(dtype)
    (outputs,) = session.run(["output"], {"input": rows})

    # Standardised in float64, as the engine does, before the first layer.
    operators = [node.op_type for node in onnx.load_from_string(blob).graph.node]
    first = ["Cast", "Sub", "Div", "Cast"] if dtype == "float32" else ["Sub", "Div"]
    assert operators[: len(first) + 1] == [*first, "MatMul"]
    np.testing.assert_allclose(outputs, model.predict(rows), rtol=0, atol=TOLERANCES[dtype])


class Softsign(Activation):
    """z / (1 + |z|): an activation the engine could gain, with no ONNX form in the export."""

    name = "softsign"

    def forward(self, Z, out):
        np.divide(Z, 1.0 + np.abs(Z), out=out)
        return out

    def backward(self, A, dA, out, scratch):
        np.subtract(1.0, np.abs(A), out=scratch)  # f'(z) = (1 - |A|)^2
        np.square(scratch, out=scratch)
        return np.multiply(dA, scratch, out=out)


def test_an_activation_without_an_onnx_form_is_501_naming_the_layer(
    redis_url, redis_conn, monkeypatch
):
    monkeypatch.setitem(ACTIVATIONS, Softsign.name, Softsign)  # as if the engine had gained it
    job = job_for("tanh", "float64")
    job["network"]["layers"][1]["activation"] = Softsign.name
    spec = {"network": job["network"], "training": job["training"]}
    model, _ = backprop.train(spec, X_TRAIN, job["data"]["y"])
    model_id = "0123456789abcdef0123456789abcdef"
    meta = {"id": model_id, "job_id": model_id, "tenant": "public", "spec": model.spec}
    store.save_model(redis_conn, model_id, model.to_bytes(), meta)
    client = create_app({"REDIS_URL": redis_url, "TESTING": True}).test_client()

    response = client.get(f"/v1/models/{model_id}/onnx")

    assert response.status_code == 501, response.text
    body = response.get_json()
    assert body["code"] == 501 and body["status"] == "Not Implemented"
    assert "softsign" in body["message"] and "npz" in body["message"]
    assert list(body["errors"]) == ["network.layers.1.activation"]
    # The model itself is fine: it predicts, and its weights download.
    predicted = client.post(f"/v1/models/{model_id}/predict", json={"inputs": X_TRAIN[:2].tolist()})
    assert predicted.status_code == 200
    np.testing.assert_allclose(predicted.get_json()["outputs"], model.predict(X_TRAIN[:2]))
    weights = client.get(f"/v1/models/{model_id}/weights", query_string={"format": "npz"})
    assert weights.status_code == 200
