"""End to end over HTTP: gunicorn serves the API, an rq worker subprocess trains, Redis is real.

One gunicorn runs for the whole module; each test starts from an empty Redis and starts the
workers it needs.
"""

import time

import numpy as np
import pytest

from tests.support.checks import assert_error
from tests.support.jobs import LONG_JOB, SOFTMAX_JOB, XOR_X, article_job
from tests.support.live import JOB_DEADLINE, POLL_INTERVAL

# The article's outputs; 9,999 epochs is what it prints, one update before its last.
ARTICLE_OUTPUTS = {
    9_999: [0.06368082, 0.94085536, 0.94108726, 0.06402009],
    10_000: [0.06367371, 0.94086271, 0.94109457, 0.06401166],
}

SIGMOID_BCE_JOB = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "seed": 5,
    },
    "training": {
        "loss": "binary_crossentropy",
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "epochs": 300,
        "batch_size": None,
    },
    "data": {"X": [[-2.0], [-1.0], [-0.5], [0.5], [1.0], [2.0]], "y": [0, 0, 0, 1, 1, 1]},
}


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("epochs", sorted(ARTICLE_OUTPUTS))
def test_article_xor_job(api, start_worker, epochs):
    start_worker()
    job_id = api.submit(article_job(epochs))

    record = api.wait_until_done(job_id)
    assert record["status"] == "finished", record
    assert record["model_id"] == job_id
    assert record["attempts"] == 1
    assert record["error"] is None
    assert record["progress"]["epoch"] == record["progress"]["epochs"] == epochs
    assert record["started_at"] and record["ended_at"]

    response = api.predict(job_id, XOR_X)
    assert response.status_code == 200, response.text
    prediction = response.json()
    outputs = np.array(prediction["outputs"])
    assert outputs.shape == (4, 1)
    np.testing.assert_allclose(outputs[:, 0], ARTICLE_OUTPUTS[epochs], rtol=0, atol=1e-6)
    assert "labels" not in prediction  # sse on a sigmoid output is regression, not a classifier

    history = api.get(f"/v1/jobs/{job_id}/history").json()
    assert history["epoch"] == list(range(1, epochs + 1))
    assert len(history["loss"]) == epochs
    assert history["loss"][-1] < history["loss"][0] / 10
    page = api.get(f"/v1/jobs/{job_id}/history?offset={epochs - 3}&limit=2").json()
    assert page["epoch"] == [epochs - 2, epochs - 1]
    assert page["loss"] == history["loss"][-3:-1]

    model = api.get(f"/v1/models/{job_id}").json()
    assert model["id"] == model["job_id"] == job_id
    assert (model["n_inputs"], model["n_outputs"], model["n_params"]) == (2, 1, 9)
    assert model["epochs_run"] == epochs
    assert model["final_loss"] == history["loss"][-1]
    assert model["spec"]["network"]["seed"] == 1

    layers = api.get(f"/v1/models/{job_id}/weights").json()
    (W1, b1), (W2, b2) = [(np.array(layer["W"]), np.array(layer["b"])) for layer in layers]
    assert (W1.shape, b1.shape, W2.shape, b2.shape) == ((2, 2), (2,), (2, 1), (1,))
    by_hand = sigmoid(sigmoid(np.array(XOR_X) @ W1 + b1) @ W2 + b2)
    np.testing.assert_allclose(by_hand, outputs, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("job", "expected_labels"),
    [
        pytest.param(SOFTMAX_JOB, [0, 0, 1, 1, 2, 2], id="softmax-argmax"),
        pytest.param(SIGMOID_BCE_JOB, [0, 0, 0, 1, 1, 1], id="sigmoid-bce-threshold"),
    ],
)
def test_classifier_labels(api, start_worker, job, expected_labels):
    start_worker()
    job_id = api.submit(job)
    assert api.wait_until_done(job_id)["status"] == "finished"

    response = api.predict(job_id, job["data"]["X"])
    assert response.status_code == 200, response.text
    body = response.json()
    outputs = np.array(body["outputs"])
    if outputs.shape[1] > 1:
        assert body["labels"] == outputs.argmax(axis=1).tolist()
    else:
        assert body["labels"] == (outputs[:, 0] >= 0.5).astype(int).tolist()
    assert body["labels"] == expected_labels  # separable data: the labels are the classes


def test_model_of_unfinished_job_is_409(api):
    job_id = api.submit(LONG_JOB)  # no worker runs, so it stays queued

    assert_error(api.predict(job_id, [[0.5]]), 409)
    assert_error(api.get(f"/v1/models/{job_id}"), 409)
    assert_error(api.get(f"/v1/models/{job_id}/weights"), 409)
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs/{id}"),
        ("GET", "/v1/jobs/{id}/history"),
        ("GET", "/v1/models/{id}"),
        ("GET", "/v1/models/{id}/weights"),
        ("POST", "/v1/models/{id}/predict"),
        ("GET", "/v1/no-such-resource"),
    ],
)
def test_unknown_id_or_url_is_404_json(api, method, path):
    url = path.format(id="0123456789abcdef0123456789abcdef")
    if method == "GET":
        response = api.get(url)
    else:
        response = api.post(url, {"inputs": [[0.0, 1.0]]})
    assert_error(response, 404)


def test_jobs_are_listed_newest_first_in_pages(api):
    first, second, third = (api.submit(LONG_JOB) for _ in range(3))

    page = api.get("/v1/jobs", params={"limit": 2}).json()
    assert [job["id"] for job in page["jobs"]] == [third, second]
    assert page["next_cursor"] == second

    page = api.get("/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [job["id"] for job in page["jobs"]] == [first]
    assert page["next_cursor"] is None

    assert all(job["status"] == "queued" for job in page["jobs"])
    body = assert_error(api.get("/v1/jobs", params={"cursor": "nosuchjob"}), 422)
    assert "cursor" in body["errors"]


def test_healthz(api):
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_needs_a_worker(api, start_worker):
    response = api.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "no worker is alive", "redis": "up", "workers": 0}

    start_worker()
    deadline = time.monotonic() + JOB_DEADLINE
    while (response := api.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, response.text
        time.sleep(POLL_INTERVAL)
    assert response.json() == {"status": "ready", "redis": "up", "workers": 1}
