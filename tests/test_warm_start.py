"""Warm starts: ``initial_model_id`` begins a job from a trained model's weights and, unless
``keep_preprocessing`` is false, its fitted preprocessing; the new model records its lineage."""

import copy
import json
import signal

import numpy as np
import pytest
import requests

import store
from backprop import Model, Trainer
from tests.support.auth import bearer, keyed_app
from tests.support.jobs import long_job, trained
from tests.support.live import Api, final, past_epoch, submit, wait_for
from tests.support.resume import FAST
from workers.tasks import train_job

RNG = np.random.default_rng(5)
X = RNG.normal(10.0, 4.0, (60, 3))
Y = X @ np.array([[0.3], [-0.2], [0.1]]) - 1.0

# A regression on raw inputs far from zero: standardisation matters, so a kept or refitted
# one shows in the predictions.
PARENT = {
    "network": {
        "layers": [{"units": 6, "activation": "tanh"}, {"units": 1, "activation": "linear"}],
        "seed": 2,
    },
    "training": {
        "loss": "mse",
        "optimizer": {"name": "sgd", "learning_rate": 0.05},
        "epochs": 150,
        "batch_size": None,
    },
    "preprocessing": {"standardize": True},
    "data": {"X": X.tolist(), "y": Y.tolist()},
}


def child_of(parent_id: str, epochs: int = 30, **fields) -> dict:
    job = copy.deepcopy(PARENT)
    job["training"]["epochs"] = epochs
    return {**job, "initial_model_id": parent_id, **fields}


def history(client, job_id: str) -> dict:
    return client.get(f"/v1/jobs/{job_id}/history").get_json()


def test_a_warm_start_continues_the_loss_curve(api: Api, start_worker):
    start_worker()
    parent = api.submit(PARENT)
    assert api.wait_until_done(parent)["status"] == "finished"
    child = api.submit(child_of(parent))
    assert api.wait_until_done(child)["status"] == "finished"

    parent_loss = api.get(f"/v1/jobs/{parent}/history").json()["loss"]
    child_loss = api.get(f"/v1/jobs/{child}/history").json()["loss"]
    # Full batch: the child's first epoch is scored at the parent's last weights, one step on.
    assert child_loss[0] == pytest.approx(parent_loss[-1], rel=0.05)
    assert child_loss[0] < parent_loss[0] / 5  # not a fresh start, which begins up there
    assert child_loss[-1] < parent_loss[-1]

    model = api.get(f"/v1/models/{child}").json()
    assert model["parent_id"] == parent
    assert model["lineage"] == [parent]
    assert model["spec"]["initial_model_id"] == parent
    assert model["spec"]["keep_preprocessing"] is True
    assert api.get(f"/v1/models/{parent}").json()["lineage"] == []


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda job: job["network"]["layers"][0].update(units=7), "network.layers.0.units"),
        (
            lambda job: job["network"]["layers"].insert(0, {"units": 6, "activation": "relu"}),
            "network.layers",
        ),
        (lambda job: job["data"].update(X=(X[:, :2]).tolist()), "data.X"),
        (lambda job: job.update(preprocessing={"standardize": False}), "preprocessing.standardize"),
        (lambda job: job.update(initial_model_id="0" * 32), "initial_model_id"),
        (lambda job: job.update(initial_model_id="not-an-id"), "initial_model_id"),
        (
            lambda job: job.update(initial_weights=[{"W": [[0] * 6] * 3, "b": [0] * 6}]),
            "initial_model_id",
        ),
    ],
    ids=["units", "layer-count", "input-width", "standardize", "unknown", "malformed", "both"],
)
def test_a_job_that_does_not_fit_its_initial_model_is_a_422_naming_the_field(client, edit, path):
    parent = trained(client, {**PARENT, "training": {**PARENT["training"], "epochs": 2}})
    job = child_of(parent)
    edit(job)
    response = client.post("/v1/jobs", json=job)
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert list(body["errors"]) == [path], body
    assert body["message"].startswith(f"Invalid request: {path}")


def test_the_units_mismatch_names_the_layer_and_the_model(client):
    parent = trained(client, {**PARENT, "training": {**PARENT["training"], "epochs": 2}})
    job = child_of(parent)
    job["network"]["layers"][1] = {"units": 2, "activation": "linear"}
    job["data"]["y"] = np.hstack([Y, Y]).tolist()
    body = client.post("/v1/jobs", json=job).get_json()
    message = f"must be 1, as in initial model {parent}"
    assert body["errors"] == {"network.layers.1.units": [message]}


def test_keep_preprocessing_without_a_model_is_a_422(client):
    body = client.post("/v1/jobs", json={**PARENT, "keep_preprocessing": False}).get_json()
    assert list(body["errors"]) == ["keep_preprocessing"]


def test_another_tenants_model_is_unknown(redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    app = keyed_app(redis_url)
    try:
        client = app.test_client()
        response = client.post("/v1/jobs", json=PARENT, headers=bearer("alice"))
        parent = response.get_json()["id"]
        assert train_job(parent)["model_id"] == parent
        response = client.post("/v1/jobs", json=child_of(parent), headers=bearer("bob"))
        assert response.status_code == 422
        assert list(response.get_json()["errors"]) == ["initial_model_id"]
        response = client.post("/v1/jobs", json=child_of(parent), headers=bearer("alice"))
        assert response.status_code == 202
    finally:
        app.extensions["redis"].close()


def predictions(client, model_id: str, rows) -> np.ndarray:
    response = client.post(f"/v1/models/{model_id}/predict", json={"inputs": rows})
    assert response.status_code == 200, response.get_json()
    return np.array(response.get_json()["outputs"])


@pytest.mark.parametrize("keep", [True, False])
def test_kept_preprocessing_predicts_on_the_parents_scale(client, keep):
    parent = trained(client, PARENT)
    # New data on another scale; a learning rate so small the weights barely move, so the
    # predictions differ only by the preprocessing the child applies.
    shifted = X * 3 + 50
    job = child_of(parent, epochs=1, keep_preprocessing=keep)
    job["training"]["optimizer"]["learning_rate"] = 1e-12
    job["data"] = {"X": shifted.tolist(), "y": Y.tolist()}
    child = trained(client, job)
    rows = X[:5].tolist()
    same = np.allclose(predictions(client, child, rows), predictions(client, parent, rows))
    assert same is keep


def test_the_lineage_is_the_chain_of_parents(client):
    short = {**PARENT, "training": {**PARENT["training"], "epochs": 2}}
    first = trained(client, short)
    second = trained(client, child_of(first, epochs=2))
    third = trained(client, child_of(second, epochs=2))
    model = client.get(f"/v1/models/{third}").get_json()
    assert (model["parent_id"], model["lineage"]) == (second, [second, first])


def test_lineage_is_bounded(client, redis_conn):
    parent = trained(client, {**PARENT, "training": {**PARENT["training"], "epochs": 2}})
    meta = store.load_model_meta(redis_conn, parent)
    long_ago = [f"{i:032x}" for i in range(store.models.LINEAGE_DEPTH)]
    meta["lineage"] = long_ago
    redis_conn.set(store.keys.model_meta_key(parent), json.dumps(meta))
    child = trained(client, child_of(parent, epochs=2))
    lineage = client.get(f"/v1/models/{child}").get_json()["lineage"]
    assert lineage == [parent, *long_ago[:-1]]


def test_a_deleted_parent_fails_the_queued_job(client):
    parent = trained(client, {**PARENT, "training": {**PARENT["training"], "epochs": 2}})
    child = client.post("/v1/jobs", json=child_of(parent)).get_json()["id"]
    assert client.delete(f"/v1/models/{parent}").status_code == 204
    train_job(child)
    record = client.get(f"/v1/jobs/{child}").get_json()
    assert record["status"] == "failed"
    assert record["error"]["code"] == "initial_model_missing"


def test_a_resumed_warm_start_ends_with_the_bits_of_an_uninterrupted_one():
    spec = {k: v for k, v in PARENT.items() if k != "data"}
    parent = Trainer(spec, X, Y)
    parent.fit()
    model = parent.model()
    child_spec = {**spec, "initial_model_id": "f" * 32, "keep_preprocessing": True}
    child_spec["training"] = {**spec["training"], "batch_size": 16, "epochs": 20}

    whole = Trainer(child_spec, X, Y, initial_model=model)
    whole.fit()

    first = Trainer(child_spec, X, Y, initial_model=model)
    first.fit(lambda epoch, logs: epoch == 7)
    blob = first.checkpoint()
    resumed = Trainer(child_spec, X, Y, initial_model=model)
    resumed.restore(blob)
    resumed.fit()
    assert resumed.epoch == whole.epoch == 20
    assert np.array_equal(resumed.network.params, whole.network.params)
    assert resumed.history == whole.history


def test_an_alias_names_the_initial_model_and_the_job_records_its_id(client):
    parent = trained(client, {**PARENT, "training": {**PARENT["training"], "epochs": 2}})
    assert client.put("/v1/aliases/production", json={"model_id": parent}).status_code == 201
    child = trained(client, child_of("production", epochs=2))
    model = client.get(f"/v1/models/{child}").get_json()
    assert (model["parent_id"], model["spec"]["initial_model_id"]) == (parent, parent)
    response = client.post("/v1/jobs", json=child_of("staging"))
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["initial_model_id"]


def test_a_warm_start_killed_mid_run_resumes_to_the_bits_of_an_uninterrupted_one(
    live_server, start_worker, redis_conn
):
    parent_job = long_job(epochs=50)
    parent = submit(live_server, parent_job)
    worker = start_worker(**FAST)
    assert wait_for(live_server, parent, final, "an end")["status"] == "finished"
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)

    job = {**long_job(epochs=1200), "initial_model_id": parent}
    child = submit(live_server, job)
    worker = start_worker(**FAST)
    wait_for(live_server, child, past_epoch(300, 1), "epoch 300")
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    # The checkpoint the next attempt resumes from fits a Trainer of this warm start.
    initial = Model.from_bytes(store.load_model_bytes(redis_conn, parent))
    spec = {k: v for k, v in job.items() if k != "data"}
    resumed = Trainer(spec, job["data"]["X"], job["data"]["y"], initial_model=initial)
    resumed.restore(store.load_checkpoint(redis_conn, child))
    assert resumed.epoch > 0
    start_worker(**FAST)
    record = wait_for(live_server, child, final, "an end")
    assert (record["status"], record["attempts"]) == ("finished", 2)

    reference = Trainer(spec, job["data"]["X"], job["data"]["y"], initial_model=initial)
    reference.fit()
    weights = requests.get(f"{live_server}/v1/models/{child}/weights", timeout=10).json()
    history = requests.get(f"{live_server}/v1/jobs/{child}/history", timeout=10).json()
    assert weights == json.loads(json.dumps(reference.model().weights()))
    assert history == json.loads(json.dumps(reference.history))


CLASSES = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
        "seed": 4,
    },
    "training": {
        "loss": "categorical_crossentropy",
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "epochs": 5,
        "batch_size": None,
    },
    "targets": "classes",
    "data": {"X": [[0, 0], [0, 1], [4, 4], [4, 5], [8, 0], [9, 0]], "y": [0, 0, 1, 1, 2, 2]},
}


def test_kept_class_labels_must_be_the_parents(client):
    parent = trained(client, CLASSES)
    other_labels = {**CLASSES["data"], "y": [1, 1, 2, 2, 3, 3]}
    job = {**CLASSES, "data": other_labels, "initial_model_id": parent}
    response = client.post("/v1/jobs", json=job)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["data.y"]
    child = trained(client, {**job, "keep_preprocessing": False})
    assert client.get(f"/v1/models/{child}").get_json()["classes"] == [1, 2, 3]
    kept = trained(client, {**CLASSES, "initial_model_id": parent})
    assert client.get(f"/v1/models/{kept}").get_json()["classes"] == [0, 1, 2]
