"""Inputs that used to be accepted and then failed, or took a process down: validation sets
outside the budget, NumPy files sized by the wrong dtype, jobs that can never train, and
malformed numbers that were answered with 500.

The Flask test client drives the real app against the real Redis of the session; jobs that
must train are run by the worker's own task code in this process.
"""

import copy
import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from backprop.initializers import MAX_INIT_MAGNITUDE
from backprop.trainer import Trainer
from service import budget
from service.schemas import MAX_EPOCHS
from tests.support.checks import assert_error, stored_keys
from tests.support.jobs import GOOD_JOB, edited
from workers.tasks import train_job

HEADER_LENGTH = "Inference-Header-Content-Length"


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def npy_header(descr: str, shape: tuple) -> bytes:
    """The header of an .npy file version 1.0 (no data after it) with any ``shape``."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def as_binary(blob: bytes, **query) -> dict:
    return {"data": blob, "content_type": "application/octet-stream", "query_string": query}


# -- 1. validation rows are in the budget ---------------------------------------------------

WIDE = [
    {"units": 64, "activation": "relu"},
    {"units": 64, "activation": "elu"},
    {"units": 1, "activation": "sigmoid"},
]


def rows(n: int, width: int) -> list:
    return np.random.default_rng(n).uniform(0, 1, (n, width)).round(3).tolist()


def with_validation(n_val: int, *edits) -> dict:
    return edited(
        ("training.validation", {"X": rows(n_val, 2), "y": rows(n_val, 1)}),
        ("network.layers", WIDE),
        *edits,
    )


def dry_run(client, job) -> dict:
    response = client.post("/v1/jobs?dry_run=true", json=job)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["estimate"]


def test_dry_run_estimates_grow_with_validation_rows(client, redis_conn):
    estimates = [dry_run(client, with_validation(n)) for n in (4, 400, 4000)]

    memory = [e["memory_bytes"] for e in estimates]
    flops = [e["total_flops"] for e in estimates]
    assert memory[0] < memory[1] < memory[2]
    params = estimates[0]["parameters"]
    # A forward pass over the validation rows per epoch: 2 FLOPs per parameter and row.
    assert flops[2] - flops[1] == 2 * (4000 - 400) * params * GOOD_JOB["training"]["epochs"]
    # The 4,000 rows' activations: two 64-unit layers' logits and outputs (8 bytes each),
    # elu's temporaries, and the arrays themselves (3 columns).
    assert memory[2] - memory[1] > 3600 * 8 * (4 * 64 + 3)
    assert stored_keys(redis_conn) == []


def test_a_held_out_fraction_is_counted_as_validation_rows(client):
    data = {"X": rows(100, 2), "y": rows(100, 1)}
    plain = edited(("network.layers", WIDE), ("data", data), ("training.batch_size", 10))
    held_out = copy.deepcopy(plain)
    held_out["training"]["validation"] = {"fraction": 0.5}

    without, with_fraction = dry_run(client, plain), dry_run(client, held_out)

    params, epochs = without["parameters"], GOOD_JOB["training"]["epochs"]
    assert without["total_flops"] == 6 * 100 * params * epochs
    assert with_fraction["total_flops"] == (6 * 50 + 2 * 50) * params * epochs
    assert with_fraction["memory_bytes"] > without["memory_bytes"]


def test_the_estimate_covers_what_evaluating_the_validation_set_allocates():
    """Measured, not assumed: the engine's peak while it scores the validation rows is within
    the estimate's share for them."""
    spec = with_validation(0)
    spec["training"]["validation"] = None
    X = np.asarray(rows(4, 2))
    y = np.asarray(rows(4, 1))
    X_val, y_val = np.asarray(rows(5000, 2)), np.asarray(rows(5000, 1))
    trainer = Trainer(spec, X, y, (X_val, y_val))
    trainer.evaluate(trainer.X_val, trainer.Y_val)  # the metrics' scratch, kept between epochs

    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        trainer.evaluate(trainer.X_val, trainer.Y_val)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing:
            tracemalloc.stop()

    share = budget.evaluation_bytes(trainer.spec, 5000)
    assert peak <= share
    assert share < 2 * peak  # counted, not guessed high


def test_a_validation_set_past_the_memory_limit_is_422_naming_it(make_app, redis_conn):
    client = make_app(MAX_TRAINING_MEMORY_BYTES=2**20).test_client()
    assert dry_run(client, with_validation(4))["memory_bytes"] < 2**20

    response = client.post("/v1/jobs", json=with_validation(2000))
    body = assert_error(response, 422, "training.validation.X")
    assert "validation" in body["errors"]["training.validation.X"][0]
    data = {"X": rows(4000, 2), "y": rows(4000, 1)}
    response = client.post(
        "/v1/jobs",
        json=edited(
            ("network.layers", WIDE),
            ("data", data),
            ("training.batch_size", 4),
            ("training.validation", {"fraction": 0.5}),
        ),
    )
    assert_error(response, 422, "training.validation.fraction")
    assert stored_keys(redis_conn) == []


# -- 2. NumPy files are sized as stored --------------------------------------------------------


def test_an_npz_larger_as_stored_than_as_requested_is_413(make_app, redis_conn):
    client = make_app(MAX_DATASET_BYTES=500_000).test_client()
    # 800,000 bytes of float64 zeros in about a kilobyte; as float32 they would be 400,000.
    blob = npz_bytes(X=np.zeros((20_000, 4)), y=np.zeros(20_000))
    assert len(blob) < 5_000

    response = client.post("/v1/datasets", **as_binary(blob, dtype="float32"))

    assert_error(response, 413)
    small = npz_bytes(X=np.zeros((2_000, 4)), y=np.zeros(2_000))
    assert client.post("/v1/datasets", **as_binary(small, dtype="float32")).status_code == 201


@pytest.mark.parametrize(
    ("member", "array"),
    [
        ("X", np.zeros((3, 2), np.longdouble)),
        ("y", np.zeros(3, np.complex128)),
        ("X", np.zeros((3, 2), "U3")),
        ("y", np.zeros(3, [("a", "<f8")])),
    ],
)
def test_an_npz_of_an_unsupported_dtype_is_422_naming_the_member(client, redis_conn, member, array):
    arrays = {"X": np.zeros((3, 2)), "y": np.zeros(3), member: array}
    response = client.post("/v1/datasets", **as_binary(npz_bytes(**arrays)))

    body = assert_error(response, 422, "body")
    assert f"{member}.npy" in body["errors"]["body"][0]
    assert str(array.dtype) in body["errors"]["body"][0]
    assert stored_keys(redis_conn) == []


def test_an_npy_of_float128_is_422(client, redis_conn):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((3, 2), np.longdouble))

    response = client.post("/v1/datasets", **as_binary(buffer.getvalue(), target="1"))

    assert "float128" in assert_error(response, 422, "body")["errors"]["body"][0]


# -- 3. jobs that could never train are refused at submit --------------------------------


@pytest.mark.parametrize(
    ("init", "path"),
    [
        ({"scheme": "uniform", "low": -1e308, "high": 1e308}, "network.init.low"),
        ({"scheme": "uniform", "low": 0, "high": MAX_INIT_MAGNITUDE * 2}, "network.init.high"),
        ({"scheme": "normal", "mean": 0, "std": 1e308}, "network.init.std"),
        ({"scheme": "normal", "mean": -1e300, "std": 1}, "network.init.mean"),
    ],
)
def test_init_parameters_past_the_initializers_bound_are_422(client, redis_conn, init, path):
    assert_error(client.post("/v1/jobs", json=edited(("network.init", init))), 422, path)
    assert stored_keys(redis_conn) == []


def test_init_parameters_at_the_bound_train(client):
    init = {"scheme": "uniform", "low": -MAX_INIT_MAGNITUDE, "high": MAX_INIT_MAGNITUDE}
    job = edited(("network.init", init), ("network.dtype", "float32"))
    response = client.post("/v1/jobs", json=job)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    assert train_job(job_id) == {"model_id": job_id, "epochs_run": 5}


def test_a_split_that_leaves_no_training_row_is_422_inline_and_from_a_dataset(client, redis_conn):
    one_row = {"X": [[0, 1]], "y": [[1]]}
    job = edited(("data", one_row), ("training.validation", {"fraction": 0.5}))

    assert_error(client.post("/v1/jobs", json=job), 422, "training.validation.fraction")

    dataset_id = client.post("/v1/datasets", json=one_row).get_json()["id"]
    del job["data"]
    job["dataset_id"] = dataset_id
    assert_error(client.post("/v1/jobs", json=job), 422, "training.validation.fraction")
    assert not redis_conn.keys("bp:job:*")
    two_rows = edited(("data", {"X": [[0, 1], [1, 0]], "y": [[1], [0]]}))
    two_rows["training"]["validation"] = {"fraction": 0.5}
    assert client.post("/v1/jobs", json=two_rows).status_code == 202


@pytest.mark.parametrize(
    ("edits", "path"),
    [
        ((("data.X.0.0", 1e39),), "data.X"),
        ((("data.y.0.0", -1e39),), "data.y"),
        (
            (("training.validation", {"X": [[0, 1e39]], "y": [[1]]}),),
            "training.validation.X",
        ),
        (
            (
                (
                    "initial_weights",
                    [{"W": [[1e39, 0], [0, 0]], "b": [0, 0]}, {"W": [[0], [0]], "b": [0]}],
                ),
            ),
            "initial_weights.0.W",
        ),
    ],
)
def test_values_that_overflow_the_network_dtype_are_422(client, redis_conn, edits, path):
    job = edited(("network.dtype", "float32"), *edits)

    body = assert_error(client.post("/v1/jobs", json=job), 422, path)

    assert "float32" in body["errors"][path][0]
    assert stored_keys(redis_conn) == []
    job["network"]["dtype"] = "float64"
    assert client.post("/v1/jobs", json=job).status_code == 202


def test_standardized_inputs_may_be_large_in_float32(client):
    """Standardising happens in float64 before the cast, so only the targets must fit."""
    job = edited(
        ("network.dtype", "float32"),
        ("data.X", [[0, 1e39], [1, 2e39], [2, 3e39], [3, 4e39]]),
        ("preprocessing", {"standardize": True}),
    )
    response = client.post("/v1/jobs", json=job)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    assert train_job(job_id) == {"model_id": job_id, "epochs_run": 5}


# -- 4. malformed numbers are 4xx, not 500 ----------------------------------------------------


@pytest.mark.parametrize("shape", [(2**63, 2), (2**64 + 1, 3), (4, 2**63), (-1, 2), (2**40, 2**40)])
def test_an_npy_header_of_an_impossible_shape_is_422(client, redis_conn, shape):
    response = client.post("/v1/datasets", **as_binary(npy_header("<f8", shape), target="1"))

    assert response.status_code in (413, 422), response.get_data(as_text=True)
    assert_error(response, response.status_code, "body" if response.status_code == 422 else None)
    assert stored_keys(redis_conn) == []


def test_an_npz_member_of_an_impossible_shape_is_4xx(client, redis_conn):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("X.npy", npy_header("<f8", (2**63, 2)))
        archive.writestr("y.npy", npy_header("<f8", (3,)) + bytes(24))

    response = client.post("/v1/datasets", **as_binary(buffer.getvalue()))

    assert_error(response, 422, "body")


@pytest.fixture
def model_id(client) -> str:
    job_id = client.post("/v1/jobs", json=GOOD_JOB).get_json()["id"]
    assert train_job(job_id) == {"model_id": job_id, "epochs_run": 5}
    return job_id


@pytest.mark.parametrize(
    "length", ["²", "٣", "+3", " 3", "3 ", "-0", "1_0", "0x10", "", "9" * 5000, "0" * 5000 + "1"]
)
def test_a_header_length_that_is_not_ascii_digits_is_400(client, model_id, length):
    body = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [0, 1]}]}
    ).encode()

    response = client.post(
        f"/v2/models/{model_id}/infer",
        data=body,
        content_type="application/json",
        headers={HEADER_LENGTH: length},
    )

    assert response.status_code == 400, response.get_data(as_text=True)
    assert set(response.get_json()) == {"error"}
    assert HEADER_LENGTH in response.get_json()["error"]
    ok = client.post(
        f"/v2/models/{model_id}/infer",
        data=body,
        content_type="application/json",
        headers={HEADER_LENGTH: str(len(body))},
    )
    assert ok.status_code == 200


@pytest.mark.parametrize("offset", [2**60, 2**63, 10**30, MAX_EPOCHS + 1])
def test_a_history_offset_past_max_epochs_is_422(client, model_id, offset):
    response = client.get(f"/v1/jobs/{model_id}/history", query_string={"offset": offset})

    assert_error(response, 422, "offset")
    last = client.get(f"/v1/jobs/{model_id}/history", query_string={"offset": MAX_EPOCHS})
    assert last.status_code == 200
    assert last.get_json()["epoch"] == []
