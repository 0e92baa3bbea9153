"""Bad requests get the one JSON error body naming the field, and store nothing.

The Flask test client drives the real app against the real Redis of the session.
"""

import json

import pytest

import store
from service import create_app
from tests.support.checks import assert_error, stored_keys
from tests.support.jobs import GOOD_JOB, REMOVE, XOR_X, XOR_Y, edited
from workers.tasks import train_job


def layers(*specs: tuple[int, str]) -> list[dict]:
    return [{"units": units, "activation": activation} for units, activation in specs]


def raw_job(x_text: str = "0", lr_text: str = "0.1") -> str:
    """GOOD_JOB as JSON text, with one literal of X and the learning rate spelled as given."""
    job = edited(("data.X.0.0", "@X@"), ("training.optimizer.learning_rate", "@LR@"))
    return json.dumps(job).replace('"@X@"', x_text).replace('"@LR@"', lr_text)


BAD_JOBS = [
    # unknown fields
    (edited(("training.optimizer.learning_rat", 0.1)), "training.optimizer.learning_rat"),
    (edited(("network.layers.0.unit", 2)), "network.layers.0.unit"),
    (edited(("model", {})), "model"),
    # missing required fields
    (edited(("network", REMOVE)), "network"),
    (edited(("training.loss", REMOVE)), "training.loss"),
    (edited(("training.optimizer", REMOVE)), "training.optimizer"),
    (edited(("data.X", REMOVE)), "data.X"),
    (edited(("network.layers.1.units", REMOVE)), "network.layers.1.units"),
    # wrong types
    (edited(("network.layers.0.units", "2")), "network.layers.0.units"),
    (edited(("network.layers.0.units", True)), "network.layers.0.units"),
    (edited(("network.layers.0.units", 2.5)), "network.layers.0.units"),
    (edited(("training.optimizer.learning_rate", "0.1")), "training.optimizer.learning_rate"),
    (edited(("training.optimizer.learning_rate", True)), "training.optimizer.learning_rate"),
    (edited(("training.shuffle", 1)), "training.shuffle"),
    (edited(("training.epochs", "10")), "training.epochs"),
    (edited(("network.seed", "1")), "network.seed"),
    (edited(("network", [])), "network"),
    # the arrays
    (edited(("data.X", [[True, False], [False, True], [True, True], [False, False]])), "data.X"),
    (edited(("data.X", [["0", "0"], ["0", "1"], ["1", "0"], ["1", "1"]])), "data.X"),
    (edited(("data.X.0.0", None)), "data.X"),
    (edited(("data.X", [[0, 0], [0, 1], [1], [1, 1]])), "data.X"),
    (edited(("data.X", [])), "data.X"),
    (edited(("data.X", [[]])), "data.X"),
    (edited(("data.X", [[[0, 0]], [[0, 1]], [[1, 0]], [[1, 1]]])), "data.X"),
    (edited(("data.X", [0, 1, 1, 0])), "data.X"),
    (edited(("data.X", "0,0;0,1")), "data.X"),
    (edited(("data.y", [[0], [1], [1, 0], [0]])), "data.y"),
    (edited(("data.y", [[0], [1], [1]])), "data.y"),
    (edited(("data.y", [[0, 1], [1, 0], [1, 0], [0, 1]])), "data.y"),
    # the network
    (
        edited(("network.layers", layers((3, "softmax"), (1, "sigmoid")))),
        "network.layers.0.activation",
    ),
    (edited(("network.layers.0.activation", "sigmoidal")), "network.layers.0.activation"),
    (edited(("network.layers.0.units", 10**6)), "network.layers.0.units"),
    (edited(("network.layers.0.units", 0)), "network.layers.0.units"),
    (edited(("network.layers", layers(*[(2, "relu")] * 32, (1, "sigmoid")))), "network.layers"),
    (edited(("network.layers", [])), "network.layers"),
    (edited(("network.seed", -1)), "network.seed"),
    (edited(("network.seed", 2**32)), "network.seed"),
    (edited(("network.init", {"scheme": "xavier"})), "network.init.scheme"),
    (edited(("network.init", {"scheme": "uniform", "low": 1, "high": 0})), "network.init.high"),
    (edited(("network.dtype", "float16")), "network.dtype"),
    # loss against the output layer
    (edited(("training.loss", "categorical_crossentropy")), "training.loss"),
    (
        edited(
            ("network.layers", layers((2, "sigmoid"), (2, "softmax"))),
            ("data.y", [[1, 0], [0, 1], [0, 1], [1, 0]]),
            ("training.loss", "binary_crossentropy"),
        ),
        "training.loss",
    ),
    (
        edited(("network.layers.1.activation", "relu"), ("training.loss", "binary_crossentropy")),
        "training.loss",
    ),
    (edited(("training.loss", "hinge")), "training.loss"),
    # targets the loss cannot take
    (
        edited(
            ("network.layers", layers((2, "sigmoid"), (2, "softmax"))),
            ("data.y", [[1, 0], [1, 1], [0, 1], [1, 0]]),
            ("training.loss", "categorical_crossentropy"),
        ),
        "data.y",
    ),
    (edited(("data.y", [[0], [2], [1], [0]]), ("training.loss", "binary_crossentropy")), "data.y"),
    (
        edited(
            ("training.loss", "binary_crossentropy"),
            ("training.validation", {"X": XOR_X, "y": [[0], [1], [1], [-1]]}),
        ),
        "training.validation.y",
    ),
    # training settings
    (edited(("training.optimizer.name", "lbfgs")), "training.optimizer.name"),
    (edited(("training.optimizer.learning_rate", -0.1)), "training.optimizer.learning_rate"),
    (edited(("training.optimizer.learning_rate", 0)), "training.optimizer.learning_rate"),
    (edited(("training.epochs", 0)), "training.epochs"),
    (edited(("training.epochs", 10**9)), "training.epochs"),
    (edited(("training.batch_size", 0)), "training.batch_size"),
    (
        edited(("training.validation", {"fraction": 0.25, "X": XOR_X, "y": XOR_Y})),
        "training.validation",
    ),
    (edited(("training.validation", {"fraction": 1})), "training.validation.fraction"),
    (edited(("training.validation", {"X": XOR_X})), "training.validation.y"),
    (
        edited(("training.validation", {"X": [[0], [1]], "y": [[0], [1]]})),
        "training.validation.X",
    ),
    (
        edited(("training.early_stopping", {"monitor": "val_loss"})),
        "training.early_stopping.monitor",
    ),
    # initial weights against the layers
    (
        edited(
            ("initial_weights", [{"W": [[0, 0]] * 3, "b": [0, 0]}, {"W": [[0], [0]], "b": [0]}])
        ),
        "initial_weights.0.W",
    ),
    (
        edited(
            ("initial_weights", [{"W": [[0, 0]] * 2, "b": [0, 0]}, {"W": [[0], [0]], "b": [0, 0]}])
        ),
        "initial_weights.1.b",
    ),
    (edited(("initial_weights", [{"W": [[0, 0]] * 2, "b": [0, 0]}])), "initial_weights"),
]

# JSON text that json.loads reads but a training service must refuse.
BAD_LITERALS = [
    (raw_job(x_text="NaN"), "data.X"),
    (raw_job(x_text="Infinity"), "data.X"),
    (raw_job(x_text="-Infinity"), "data.X"),
    (raw_job(x_text="1e400"), "data.X"),
    (raw_job(x_text="1" + "0" * 400), "data.X"),
    (raw_job(lr_text="NaN"), "training.optimizer.learning_rate"),
    (raw_job(lr_text="1e400"), "training.optimizer.learning_rate"),
    (raw_job(lr_text="1" + "0" * 400), "training.optimizer.learning_rate"),
    ("", "network"),  # no body at all: every required part is missing
    ("[]", "body"),
    ('"job"', "body"),
]

# JSON that cannot be read at all.
UNREADABLE_BODIES = [
    "{bad",
    '{"network": ',
    "[" * 100_000 + "]" * 100_000,
    raw_job(x_text="1" + "0" * 5000),  # past Python's integer digit limit
    b'{"data": "\xff"}',
]

OTHER_ERRORS = [
    # (method, url, request keyword arguments, status)
    ("POST", "/v1/jobs", {"data": json.dumps(GOOD_JOB), "content_type": "text/plain"}, 415),
    ("POST", "/v1/jobs", {"data": json.dumps(GOOD_JOB)}, 415),
    ("POST", "/v1/jobs", {"data": {"network": "x"}}, 415),
    ("DELETE", "/v1/jobs", {}, 405),
    ("PUT", "/v1/jobs", {"json": GOOD_JOB}, 405),
    ("GET", f"/v1/models/{'0' * 32}/predict", {}, 405),
    ("GET", "/v1/nothing", {}, 404),
    ("GET", "/no-such-page", {}, 404),
    ("POST", "/v3/jobs", {"json": GOOD_JOB}, 404),
    ("GET", "/v1/jobs/no-such-job", {}, 404),
    ("GET", "/v1/models/no-such-model/weights", {}, 404),
]

BAD_QUERIES = [
    ({"limit": 0}, "limit"),
    ({"limit": 101}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "no-such-job"}, "cursor"),
    ({"cursor": "x" * 65}, "cursor"),
]

BAD_INPUTS = [
    ({"inputs": [[0, 0, 0]]}, "inputs"),
    ({"inputs": [[0]]}, "inputs"),
    ({"inputs": []}, "inputs"),
    ({"inputs": [[]]}, "inputs"),
    ({"inputs": [0, 1]}, "inputs"),
    ({"inputs": [["0", "1"]]}, "inputs"),
    ({"inputs": [[0, 1], [1]]}, "inputs"),
    ({}, "inputs"),
    ({"inputs": [[0, 1]], "labels": True}, "labels"),
    ('{"inputs": [[0, NaN]]}', "inputs"),
    ('{"inputs": [[Infinity, 0]]}', "inputs"),
]


def post_json(client, url: str, body):
    """POST ``body`` as JSON; a str is sent as it is, so it may hold any literal."""
    if isinstance(body, str | bytes):
        return client.post(url, data=body, content_type="application/json")
    return client.post(url, json=body)


def assert_nothing_stored(redis_conn) -> None:
    """No job, no queue entry: Redis is as empty as the test found it."""
    assert stored_keys(redis_conn) == []


def test_the_good_job_is_accepted(client, redis_conn):
    """The control for every table below: each bad case is GOOD_JOB with one thing wrong."""
    response = client.post("/v1/jobs", json=GOOD_JOB)
    assert response.status_code == 202
    assert redis_conn.exists(store.job_key(response.get_json()["id"]))
    response = post_json(client, "/v1/jobs", raw_job())
    assert response.status_code == 202


@pytest.mark.parametrize(("job", "path"), BAD_JOBS, ids=[path for _, path in BAD_JOBS])
def test_bad_job_is_422_naming_the_field(client, redis_conn, job, path):
    body = assert_error(client.post("/v1/jobs", json=job), 422, path)
    assert path in body["message"]
    assert_nothing_stored(redis_conn)


@pytest.mark.parametrize(("text", "path"), BAD_LITERALS)
def test_non_finite_or_non_object_json_is_422(client, redis_conn, text, path):
    assert_error(post_json(client, "/v1/jobs", text), 422, path)
    assert_nothing_stored(redis_conn)


@pytest.mark.parametrize("text", UNREADABLE_BODIES, ids=range(len(UNREADABLE_BODIES)))
def test_unreadable_json_is_400(client, redis_conn, text):
    assert_error(post_json(client, "/v1/jobs", text), 400, "body")
    assert_nothing_stored(redis_conn)


@pytest.mark.parametrize(("method", "url", "kwargs", "status"), OTHER_ERRORS)
def test_other_errors_get_the_json_body(client, redis_conn, method, url, kwargs, status):
    assert_error(client.open(url, method=method, **kwargs), status)
    assert_nothing_stored(redis_conn)


def test_body_over_the_size_limit_is_413(redis_url, redis_conn):
    client = create_app({"REDIS_URL": redis_url, "TESTING": True, "MAX_CONTENT_LENGTH": 1024})
    big = edited(("data.X", [[0.5, 0.5]] * 200), ("data.y", [[0.5]] * 200))
    assert len(json.dumps(big)) > 1024
    assert_error(client.test_client().post("/v1/jobs", json=big), 413)
    assert_nothing_stored(redis_conn)


@pytest.mark.parametrize(("query", "path"), BAD_QUERIES)
def test_bad_list_query_is_422(client, query, path):
    assert_error(client.get("/v1/jobs", query_string=query), 422, path)


@pytest.fixture
def model_id(client, redis_url, monkeypatch) -> str:
    """A finished model of GOOD_JOB, trained by the worker's own task code in this process."""
    job_id = client.post("/v1/jobs", json=GOOD_JOB).get_json()["id"]
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert train_job(job_id) == {"model_id": job_id, "epochs_run": 5}
    return job_id


@pytest.mark.parametrize(("body", "path"), BAD_INPUTS)
def test_bad_predict_input_is_422(client, redis_conn, model_id, body, path):
    keys = stored_keys(redis_conn)
    assert_error(post_json(client, f"/v1/models/{model_id}/predict", body), 422, path)
    assert stored_keys(redis_conn) == keys


def test_the_service_is_fine_after_bad_requests(client, redis_conn):
    for job, _ in BAD_JOBS[:5]:
        client.post("/v1/jobs", json=job)
    for text in UNREADABLE_BODIES:
        post_json(client, "/v1/jobs", text)
    assert redis_conn.keys("bp:job:*") == []
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/jobs", json=GOOD_JOB).status_code == 202
