"""Job bodies for POST /v1/jobs, and builders of variations on them."""

import copy

import numpy as np

from examples.xor_article import article_spec
from workers.tasks import train_job

XOR_X = [[0, 0], [0, 1], [1, 0], [1, 1]]
XOR_Y = [[0], [1], [1], [0]]

# A small, quick, valid job: each bad-request case in the tests is it with one thing wrong.
GOOD_JOB = {
    "network": {
        "layers": [{"units": 2, "activation": "sigmoid"}, {"units": 1, "activation": "sigmoid"}],
        "seed": 1,
    },
    "training": {
        "loss": "sse",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 5,
        "batch_size": None,
    },
    "data": {"X": XOR_X, "y": XOR_Y},
}
REMOVE = object()

# The article's XOR network, whose outputs the end-to-end tests check to the digit.
ARTICLE_JOB = {**article_spec(10_000), "data": {"X": XOR_X, "y": XOR_Y}}

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

# Big enough that no test could see it finish: used where no worker runs.
LONG_JOB = {
    "network": {"layers": [{"units": 1, "activation": "sigmoid"}]},
    "training": {"loss": "mse", "optimizer": {"name": "sgd"}, "epochs": 1_000_000},
    "data": {"X": [[0], [1]], "y": [[0], [1]]},
}


def edited(*edits: tuple[str, object]) -> dict:
    """GOOD_JOB with ``(dotted.path, value)`` edits applied; ``REMOVE`` deletes the key."""
    job = copy.deepcopy(GOOD_JOB)
    for path, value in edits:
        *parents, last = path.split(".")
        node = job
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is REMOVE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return job


def article_job(epochs: int) -> dict:
    """ARTICLE_JOB run for ``epochs`` epochs."""
    job = copy.deepcopy(ARTICLE_JOB)
    job["training"]["epochs"] = epochs
    return job


def long_job(epochs: int = 1500, **training) -> dict:
    """A small classifier with minibatches, shuffling and Adam: every piece of state matters."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((240, 6))
    labels = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    y = np.eye(3)[labels]
    return {
        "network": {
            "layers": [
                {"units": 24, "activation": "tanh"},
                {"units": 16, "activation": "relu"},
                {"units": 3, "activation": "softmax"},
            ],
            "init": {"scheme": "glorot_uniform"},
            "seed": 11,
        },
        "training": {
            "loss": "categorical_crossentropy",
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": epochs,
            "batch_size": 16,
            "shuffle": True,
            **training,
        },
        "data": {"X": X.tolist(), "y": y.tolist()},
    }


# Fixed weights that double every input twice. A learning rate of 1e-9 leaves them as they are.
DOUBLING = [
    {"W": [[2.0, 0.0], [0.0, 2.0]], "b": [0.0, 0.0]},
    {"W": [[2.0], [2.0]], "b": [0.0]},
]


def linear_job(dtype: str = "float64") -> dict:
    """Outputs 4·(x0 + x1) in ``dtype``, with fixed weights (DOUBLING, kept by training)."""
    return edited(
        ("network.dtype", dtype),
        ("network.layers.0.activation", "linear"),
        ("network.layers.1.activation", "linear"),
        ("training.optimizer.learning_rate", 1e-9),
        ("training.epochs", 1),
        ("initial_weights", DOUBLING),
    )


def trained(client, job: dict) -> str:
    response = client.post("/v1/jobs", json=job)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    assert train_job(job_id)["model_id"] == job_id
    return job_id


def v2_request(rows: list[list[float]]) -> dict:
    return {
        "inputs": [
            {"name": "input", "datatype": "FP64", "shape": [len(rows), 2], "data": rows},
        ]
    }


# A regression whose loss overflows within a few epochs at this learning rate: fails "diverged".
DIVERGING_JOB = {
    "network": {
        "layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}],
        "seed": 1,
    },
    "training": {
        "loss": "mse",
        "optimizer": {"name": "sgd", "learning_rate": 9.0},
        "epochs": 500,
        "batch_size": None,
    },
    "data": {"X": [[1, 2], [3, 4], [5, 6], [7, 8]], "y": [[100], [200], [300], [400]]},
}
