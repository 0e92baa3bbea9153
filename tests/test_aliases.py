"""Aliases: per-tenant names of models, moved atomically, accepted wherever a model id is."""

import hashlib
import threading

import pytest
import requests

from store import aliases
from tests.support.apps import serve_api
from tests.support.auth import bearer, keyed_app
from tests.support.jobs import trained
from tests.support.live import Api
from workers.tasks import train_job


def constant_job(value: float) -> dict:
    """A one-unit linear model that predicts about ``value`` for any input: its bias starts
    there and a learning rate of 1e-12 leaves it there, so two models are easy to tell apart."""
    return {
        "network": {"layers": [{"units": 1, "activation": "linear"}], "seed": 1},
        "training": {
            "loss": "mse",
            "optimizer": {"name": "sgd", "learning_rate": 1e-12},
            "epochs": 1,
            "batch_size": None,
        },
        "data": {"X": [[0.0], [1.0]], "y": [[value], [value]]},
        "initial_weights": [{"W": [[0.0]], "b": [value]}],
    }


def output(response) -> float:
    """The first output of a predict answer, from requests or the Flask test client."""
    assert response.status_code == 200, response.text
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    return round(body["outputs"][0][0], 6)


@pytest.fixture
def two_models(client) -> tuple[str, str]:
    return trained(client, constant_job(1.0)), trained(client, constant_job(2.0))


def test_put_get_list_and_delete(client, two_models):
    first, second = two_models
    response = client.put("/v1/aliases/prod", json={"model_id": first})
    assert response.status_code == 201
    created = response.get_json()
    assert (created["name"], created["model_id"]) == ("prod", first)
    assert created["history"][0]["from"] is None
    assert created["history"][0]["to"] == first
    assert created["history"][0]["by"] == "public"

    response = client.put("/v1/aliases/prod", json={"model_id": second})
    assert response.status_code == 200
    moves = client.get("/v1/aliases/prod").get_json()["history"]
    assert [(m["from"], m["to"]) for m in moves] == [(first, second), (None, first)]
    assert client.put("/v1/aliases/prod", json={"model_id": second}).status_code == 200
    assert len(client.get("/v1/aliases/prod").get_json()["history"]) == 2  # not a move

    client.put("/v1/aliases/canary", json={"model_id": first})
    listed = client.get("/v1/aliases").get_json()["aliases"]
    assert listed == [
        {"name": "canary", "model_id": first},
        {"name": "prod", "model_id": second},
    ]
    assert client.delete("/v1/aliases/prod").status_code == 204
    assert client.get("/v1/aliases/prod").status_code == 404
    assert client.delete("/v1/aliases/prod").status_code == 404
    assert [a["name"] for a in client.get("/v1/aliases").get_json()["aliases"]] == ["canary"]


@pytest.mark.parametrize(
    "name",
    [
        "0123456789abcdef0123456789abcdef",  # an id
        "DEADBEEFDEADBEEFDEADBEEFDEADBEEF",  # an id in capitals
        "abcdefabcdefabcdefabcdefabcdefab",  # letters only, still 32 hex digits
        "1prod",
        "-prod",
        "a" * 65,
        "prod%20line",
    ],
)
def test_names_that_are_not_alias_names_are_422(client, two_models, name):
    response = client.put(f"/v1/aliases/{name}", json={"model_id": two_models[0]})
    assert response.status_code == 422, response.get_json()
    assert list(response.get_json()["errors"]) == ["name"]


def test_an_unknown_or_unfinished_model_is_422_naming_model_id(client):
    body = {"model_id": "0" * 32}
    response = client.put("/v1/aliases/prod", json=body)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["model_id"]
    unfinished = client.post("/v1/jobs", json=constant_job(1.0)).get_json()["id"]
    response = client.put("/v1/aliases/prod", json={"model_id": unfinished})
    assert list(response.get_json()["errors"]) == ["model_id"]
    assert client.get("/v1/aliases/prod").status_code == 404


def test_every_model_route_accepts_an_alias(client, two_models):
    first, _ = two_models
    client.put("/v1/aliases/prod.v1", json={"model_id": first})
    assert client.get("/v1/models/prod.v1").get_json()["id"] == first
    by_id = client.get(f"/v1/models/{first}/weights").get_json()
    assert client.get("/v1/models/prod.v1/weights").get_json() == by_id
    assert client.get("/v1/models/prod.v1/weights?format=npz").status_code == 200
    assert client.get("/v1/models/prod.v1/onnx").status_code == 200
    assert output(client.post("/v1/models/prod.v1/predict", json={"inputs": [[3]]})) == 1.0

    assert client.get("/v2/models/prod.v1").get_json()["name"] == "prod.v1"
    assert client.get("/v2/models/prod.v1/ready").get_json()["ready"] is True
    assert client.get("/v2/models/prod.v1/versions/1/ready").status_code == 200
    infer = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 1], "data": [3]}]}
    response = client.post("/v2/models/prod.v1/infer", json=infer)
    assert response.get_json()["outputs"][0]["data"] == pytest.approx([1.0])

    response = client.post("/v1/models/nosuch/predict", json={"inputs": [[3]]})
    assert response.status_code == 404
    assert response.get_json()["message"] == "No model or alias nosuch."
    response = client.post("/v2/models/nosuch/infer", json=infer)
    assert response.status_code == 404
    assert response.get_json() == {"error": "No model or alias nosuch."}


def test_deleting_a_model_an_alias_points_at_is_409_naming_the_aliases(client, two_models):
    first, second = two_models
    client.put("/v1/aliases/prod", json={"model_id": first})
    client.put("/v1/aliases/canary", json={"model_id": first})
    response = client.delete(f"/v1/models/{first}")
    assert response.status_code == 409
    body = response.get_json()
    assert "canary, prod" in body["message"]
    assert body["errors"] == {"aliases": ["canary", "prod"]}
    assert client.delete("/v1/models/prod").status_code == 409  # through the alias too
    assert client.get(f"/v1/models/{first}").status_code == 200

    client.put("/v1/aliases/prod", json={"model_id": second})
    client.delete("/v1/aliases/canary")
    assert client.delete(f"/v1/models/{first}").status_code == 204
    assert client.delete(f"/v1/models/{second}").status_code == 409


def test_an_alias_cannot_point_at_a_deleted_model(client, two_models):
    first, _ = two_models
    assert client.delete(f"/v1/models/{first}").status_code == 204
    response = client.put("/v1/aliases/prod", json={"model_id": first})
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["model_id"]


def test_a_new_alias_past_the_limit_is_409(client, two_models, monkeypatch):
    monkeypatch.setattr(aliases, "MAX_ALIASES", 2)
    for name in ("one", "two"):
        assert (
            client.put(f"/v1/aliases/{name}", json={"model_id": two_models[0]}).status_code == 201
        )
    response = client.put("/v1/aliases/three", json={"model_id": two_models[0]})
    assert response.status_code == 409
    assert "2 aliases" in response.get_json()["message"]
    # Moving an existing one is no new alias.
    assert client.put("/v1/aliases/two", json={"model_id": two_models[1]}).status_code == 200


def test_aliases_belong_to_their_tenant(redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    app = keyed_app(redis_url)
    try:
        client = app.test_client()
        response = client.post("/v1/jobs", json=constant_job(1.0), headers=bearer("alice"))
        model = response.get_json()["id"]
        assert train_job(model)["model_id"] == model
        alice, bob = bearer("alice"), bearer("bob")
        body = {"model_id": model}
        assert client.put("/v1/aliases/prod", json=body, headers=alice).status_code == 201
        move = client.get("/v1/aliases/prod", headers=alice).get_json()["history"][0]
        assert move["by"] == "alice"
        assert move["key"] == hashlib.sha256(b"alice-key").hexdigest()[:12]
        # bob has no alias of that name, and may not point one at alice's model.
        assert client.get("/v1/aliases/prod", headers=bob).status_code == 404
        assert client.get("/v1/models/prod", headers=bob).status_code == 404
        predict = client.post("/v1/models/prod/predict", json={"inputs": [[0]]}, headers=bob)
        assert predict.status_code == 404
        assert client.get("/v1/aliases", headers=bob).get_json() == {"aliases": []}
        response = client.put("/v1/aliases/mine", json=body, headers=bob)
        assert list(response.get_json()["errors"]) == ["model_id"]
    finally:
        app.extensions["redis"].close()


def test_the_history_is_capped(client, two_models):
    first, second = two_models
    moves = aliases.HISTORY_LENGTH + 3
    for i in range(moves):
        client.put("/v1/aliases/prod", json={"model_id": (first, second)[i % 2]})
    history = client.get("/v1/aliases/prod").get_json()["history"]
    assert len(history) == aliases.HISTORY_LENGTH
    assert history[0]["to"] == (first, second)[(moves - 1) % 2]


def test_alias_moves_are_atomic_for_predict(redis_url, start_worker):
    """Predictions run in a loop over real HTTP against two gunicorn processes (each with its
    own model cache) while the alias moves back and forth: every prediction sent after a move
    has returned comes from the model it moved to."""
    with serve_api(redis_url, WEB_CONCURRENCY="2") as base, requests.Session() as session:
        session.trust_env = False
        api = Api(base, session)
        start_worker()
        ids = {value: api.submit(constant_job(value)) for value in (1.0, 2.0)}
        for job_id in ids.values():
            assert api.wait_until_done(job_id)["status"] == "finished"
        assert session.put(f"{base}/v1/aliases/prod", json={"model_id": ids[1.0]}).ok

        # targets[k]: where move k left the alias (0: before any). A prediction sent after
        # `completed` moves had returned, and answered before move `started` + 1 began, must
        # come from targets[completed] or, with moves in flight, a later one up to that move.
        targets, moves = [1.0], {"started": 0, "completed": 0, "stop": False}
        seen: list[tuple[list, float]] = []

        def predict_in_a_loop():
            with requests.Session() as own:
                own.trust_env = False
                while not moves["stop"]:
                    before = moves["completed"]
                    response = own.post(
                        f"{base}/v1/models/prod/predict", json={"inputs": [[5.0]]}, timeout=10
                    )
                    allowed = targets[before : moves["started"] + 1]
                    seen.append((allowed, output(response)))

        def predictions(n: int) -> None:
            count = len(seen)
            while len(seen) < count + n and loop.is_alive():
                threading.Event().wait(0.01)

        loop = threading.Thread(target=predict_in_a_loop)
        loop.start()
        try:
            for target in (2.0, 1.0, 2.0, 1.0):
                predictions(20)
                targets.append(target)
                moves["started"] += 1
                response = session.put(f"{base}/v1/aliases/prod", json={"model_id": ids[target]})
                assert response.status_code == 200
                moves["completed"] += 1
            predictions(20)
        finally:
            moves["stop"] = True
            loop.join()
        assert all(got in allowed for allowed, got in seen), seen
        # Most predictions ran with no move in flight: exactly one model was right for them.
        assert sum(len(allowed) == 1 for allowed, _ in seen) >= 50
        assert {got for _, got in seen} == {1.0, 2.0}
