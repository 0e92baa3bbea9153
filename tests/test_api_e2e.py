"""End to end over HTTP: gunicorn serves the API, an rq worker subprocess trains, Redis is real.

One gunicorn runs for the whole module; each test starts from an empty Redis and starts the
workers it needs.
"""

import copy
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests

JOB_DEADLINE = 60  # seconds a test waits for a job before giving up (not a timing assertion)
POLL_INTERVAL = 0.05

XOR_X = [[0, 0], [0, 1], [1, 0], [1, 1]]
ARTICLE_JOB = {
    "network": {
        "layers": [{"units": 2, "activation": "sigmoid"}, {"units": 1, "activation": "sigmoid"}],
        "init": {"scheme": "uniform", "low": 0, "high": 1},
        "seed": 1,
    },
    "training": {
        "loss": "sse",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 10000,
        "batch_size": None,
    },
    "data": {"X": XOR_X, "y": [[0], [1], [1], [0]]},
}
# The article's outputs; 9,999 epochs is what it prints, one update before its last.
ARTICLE_OUTPUTS = {
    9_999: [0.06368082, 0.94085536, 0.94108726, 0.06402009],
    10_000: [0.06367371, 0.94086271, 0.94109457, 0.06401166],
}

THREE_CLASSES_X = [[0, 0], [0, 1], [4, 4], [4, 5], [8, 0], [9, 0]]
THREE_CLASSES_Y = [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]
SOFTMAX_JOB = {
    "network": {
        "layers": [{"units": 8, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
        "seed": 3,
    },
    "training": {
        "loss": "categorical_crossentropy",
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "epochs": 300,
        "batch_size": None,
    },
    "data": {"X": THREE_CLASSES_X, "y": THREE_CLASSES_Y},
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
# Big enough that no test could see it finish: used where no worker runs.
LONG_JOB = {
    "network": {"layers": [{"units": 1, "activation": "sigmoid"}]},
    "training": {"loss": "mse", "optimizer": {"name": "sgd"}, "epochs": 1_000_000},
    "data": {"X": [[0], [1]], "y": [[0], [1]]},
}


def article_job(epochs: int) -> dict:
    job = copy.deepcopy(ARTICLE_JOB)
    job["training"]["epochs"] = epochs
    return job


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class Api:
    """Thin helpers over ``requests`` for the calls every test makes."""

    def __init__(self, base_url: str, session: requests.Session):
        self.base_url, self.session = base_url, session

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=10, **kwargs)

    def post(self, path: str, body: dict) -> requests.Response:
        return self.session.post(self.base_url + path, json=body, timeout=10)

    def submit(self, job: dict) -> str:
        """POST a job, check the 202 answer, and return the job's id."""
        response = self.post("/v1/jobs", job)
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "queued"
        assert response.headers["Location"] == f"/v1/jobs/{body['id']}"
        return body["id"]

    def wait_until_done(self, job_id: str) -> dict:
        """Poll the job until it reaches a final status; return its last record."""
        deadline = time.monotonic() + JOB_DEADLINE
        while True:
            response = self.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.text
            record = response.json()
            if record["status"] in ("finished", "failed", "canceled"):
                return record
            assert time.monotonic() < deadline, f"job {job_id} still {record['status']}"
            time.sleep(POLL_INTERVAL)

    def predict(self, model_id: str, inputs) -> requests.Response:
        return self.post(f"/v1/models/{model_id}/predict", {"inputs": inputs})


@pytest.fixture
def api(module_live_server: str, redis_url: str) -> Iterator[Api]:
    """A client of the module's gunicorn, with Redis emptied for this test."""
    with requests.Session() as session:
        session.trust_env = False  # straight to 127.0.0.1, whatever proxy the environment sets
        yield Api(module_live_server, session)


def assert_error(response: requests.Response, status: int) -> dict:
    """The one JSON error body, with this status."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == status
    assert body["status"] and body["message"]
    return body


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
