"""Hyperparameter sweeps: trials as ordinary jobs, the parallel cap, reproducible random
search, cancellation, median stopping, and refusals before anything is stored."""

import copy
import json
import socket
import time

import numpy as np
import pytest

import store
from service.config import from_env
from store import queue, sweeps
from workers.reaper import reap
from workers.settings import Settings
from workers.tasks import train_job

DEADLINE = 90  # seconds a sweep may take before a test gives up (not a timing assertion)
X = np.linspace(-1, 1, 20).reshape(-1, 1)
BASE_JOB = {
    "network": {
        "layers": [{"units": 2, "activation": "tanh"}, {"units": 1, "activation": "linear"}],
        "seed": 1,
    },
    "training": {
        "loss": "mse",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 40,
        "batch_size": None,
        "validation": {"fraction": 0.25},
    },
    "data": {"X": X.tolist(), "y": (2 * X + 1).tolist()},
}
LR = "training.optimizer.learning_rate"
UNITS = "network.layers[0].units"


def sweep_body(parameters: dict, epochs: int = 40, **fields) -> dict:
    job = copy.deepcopy(BASE_JOB)
    job["training"]["epochs"] = epochs
    return {"job": job, "parameters": parameters, **fields}


def wait_for_sweep(api, sweep_id: str, predicate, what: str) -> dict:
    deadline = time.monotonic() + DEADLINE
    while True:
        response = api.get(f"/v1/sweeps/{sweep_id}")
        assert response.status_code == 200, response.text
        sweep = response.json()
        if predicate(sweep):
            return sweep
        assert time.monotonic() < deadline, f"sweep never {what}: {sweep}"
        time.sleep(0.05)


def ended(sweep: dict) -> bool:
    return sweep["status"] != "running" and all(
        t["status"] in ("finished", "failed", "canceled") for t in sweep["trials"]
    )


def test_a_grid_sweep_trains_each_combination_and_names_the_best(api, start_worker):
    start_worker()
    start_worker()
    lrs, widths = [0.01, 0.05, 0.2], [2, 4]
    body = sweep_body({LR: {"values": lrs}, UNITS: {"values": widths}}, parallel=2)
    response = api.post("/v1/sweeps", body)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    assert response.headers["Location"] == f"/v1/sweeps/{sweep_id}"
    sweep = wait_for_sweep(api, sweep_id, ended, "ended")

    assert sweep["status"] == "finished"
    assert sweep["method"] == "grid"
    assert sweep["counts"]["finished"] == 6
    # Paths in sorted order, the last varying fastest.
    expected = [{UNITS: w, LR: lr} for w in widths for lr in lrs]
    assert [t["parameters"] for t in sweep["trials"]] == expected
    best_values = {}
    for trial in sweep["trials"]:
        job = api.get(f"/v1/jobs/{trial['job_id']}").json()
        assert job["sweep_id"] == sweep_id and job["parameters"] == trial["parameters"]
        model = api.get(f"/v1/models/{trial['job_id']}").json()
        assert model["spec"]["training"]["optimizer"]["learning_rate"] == trial["parameters"][LR]
        assert model["spec"]["network"]["layers"][0]["units"] == trial["parameters"][UNITS]
        history = api.get(f"/v1/jobs/{trial['job_id']}/history").json()
        assert len(history["val_loss"]) == 40
        best_values[trial["job_id"]] = min(history["val_loss"])
        assert trial["objective_value"] == pytest.approx(best_values[trial["job_id"]], rel=1e-12)
    best = min(best_values, key=best_values.get)
    assert sweep["best_trial"]["job_id"] == best
    assert sweep["best_trial"]["objective_value"] == pytest.approx(best_values[best], rel=1e-12)


def test_no_more_than_parallel_trials_start_with_workers_free(api, start_worker, redis_conn):
    for _ in range(3):
        start_worker()
    body = sweep_body({LR: {"values": [0.01, 0.02, 0.03, 0.04, 0.05]}}, 10_000, parallel=2)
    response = api.post("/v1/sweeps", body)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    ids = [t["job_id"] for t in response.json()["trials"]]
    most, samples = 0, 0
    deadline = time.monotonic() + DEADLINE
    while True:
        statuses, in_rq = snapshot(redis_conn, ids)
        most = max(most, statuses.count("started"))
        samples += 1
        assert statuses.count("started") <= 2, statuses
        assert in_rq <= 2, in_rq
        if all(s == "finished" for s in statuses):
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.01)
    assert most == 2, (most, samples)  # the cap was reached, not merely never approached
    sweep = api.get(f"/v1/sweeps/{sweep_id}").json()
    assert sweep["status"] == "finished" and sweep["counts"]["finished"] == 5


def snapshot(conn, ids: list[str]) -> tuple[list[str], int]:
    """The trials' statuses and the rq queue's length at one instant (one MULTI): read one by
    one, a trial seen started just before it ended and the next one seen started just after
    it began would count as two at once."""
    pipe = conn.pipeline(transaction=True)
    for job_id in ids:
        pipe.hget(store.job_key(job_id), "status")
    pipe.llen(queue.training_queue(conn).key)
    *statuses, in_rq = pipe.execute()
    return [json.loads(s) for s in statuses], in_rq


RANDOM = {
    LR: {"distribution": "log_uniform", "low": 1e-4, "high": 1.0},
    UNITS: {"distribution": "int_uniform", "low": 1, "high": 16},
    "training.batch_size": {"distribution": "choice", "values": [None, 4, 8]},
    "training.optimizer.momentum": {"distribution": "uniform", "low": 0.0, "high": 0.9},
}


def test_a_random_sweep_with_a_seed_repeats_exactly(client, redis_conn):
    def sweep(seed: int) -> dict:
        body = sweep_body(RANDOM, max_trials=8, seed=seed)
        response = client.post("/v1/sweeps", json=body)
        assert response.status_code == 202, response.get_json()
        assert response.get_json()["seed"] == seed
        return response.get_json()

    def values(answer: dict) -> list[dict]:
        return [t["parameters"] for t in answer["trials"]]

    first, again, other = sweep(7), sweep(7), sweep(8)
    assert values(first) == values(again)
    assert values(first) != values(other)
    assert len(values(first)) == 8
    for drawn in values(first):
        assert 1e-4 <= drawn[LR] <= 1.0
        assert type(drawn[UNITS]) is int and 1 <= drawn[UNITS] <= 16
        assert drawn["training.batch_size"] in (None, 4, 8)
        assert 0.0 <= drawn["training.optimizer.momentum"] <= 0.9
    # Each trial is a stored job with its values set in its spec.
    for trial in first["trials"]:
        spec = store.load_spec(redis_conn, trial["job_id"])
        assert spec["network"]["layers"][0]["units"] == trial["parameters"][UNITS]
        assert spec["training"]["batch_size"] == trial["parameters"]["training.batch_size"]
        assert spec["training"]["optimizer"]["learning_rate"] == trial["parameters"][LR]


def test_a_random_sweep_without_a_seed_records_the_one_it_drew(client):
    response = client.post("/v1/sweeps", json=sweep_body(RANDOM, max_trials=2))
    assert response.status_code == 202, response.get_json()
    sweep = response.get_json()
    assert isinstance(sweep["seed"], int)
    again = client.post("/v1/sweeps", json=sweep_body(RANDOM, max_trials=2, seed=sweep["seed"]))
    assert [t["parameters"] for t in again.get_json()["trials"]] == [
        t["parameters"] for t in sweep["trials"]
    ]


def test_deleting_a_sweep_cancels_its_trials(api, start_worker, redis_conn):
    start_worker()
    body = sweep_body({LR: {"values": [0.01, 0.02, 0.03]}}, 1_000_000, parallel=2)
    sweep = api.post("/v1/sweeps", body).json()
    ids = [t["job_id"] for t in sweep["trials"]]
    wait_for_sweep(api, sweep["id"], lambda s: s["counts"]["started"] == 1, "started a trial")

    response = api.session.delete(f"{api.base_url}/v1/sweeps/{sweep['id']}", timeout=10)
    assert response.status_code == 202, response.text  # the started trial stops at an epoch
    answer = response.json()
    assert answer["status"] == "canceled"
    # The queued trial and the waiting one are canceled at once.
    assert answer["counts"]["canceled"] == 2 and answer["counts"]["started"] == 1
    done = wait_for_sweep(api, sweep["id"], ended, "ended")
    assert [t["status"] for t in done["trials"]] == ["canceled"] * 3
    # The waiting trial was never put in rq nor handed to a worker, before or after the cancel.
    waiting = store.get_job(redis_conn, ids[2])
    assert waiting.get("started_at") is None and waiting.get("rq_job_id") is None
    assert redis_conn.scard(store.tenant_active_key("public")) == 0


def test_median_stopping_stops_a_clearly_worse_trial(api, start_worker):
    # One worker: the trials run one after another, so the last, hopeless one is compared
    # with the two before it over their whole histories.
    start_worker(FLUSH_SECONDS="0.02")
    body = sweep_body(
        {LR: {"values": [0.2, 0.1, 1e-6]}},
        10_000,
        objective={"metric": "loss"},
        early_stopping={"rule": "median", "min_epochs": 5},
    )
    sweep = api.post("/v1/sweeps", body).json()
    assert sweep["early_stopping"] == {"rule": "median", "min_epochs": 5, "min_trials": 2}
    done = wait_for_sweep(api, sweep["id"], ended, "ended")
    good, better, hopeless = done["trials"]
    assert good["status"] == better["status"] == "finished"
    assert hopeless["status"] == "canceled", hopeless
    assert hopeless["error"]["code"] == "early_stopped"
    assert "median" in hopeless["error"]["message"]
    assert hopeless["epochs"] < 10_000
    job = api.get(f"/v1/jobs/{hopeless['job_id']}").json()
    assert job["status"] == "canceled" and job["error"]["code"] == "early_stopped"
    assert done["best_trial"]["job_id"] in (good["job_id"], better["job_id"])


@pytest.mark.parametrize(
    ("parameters", "key", "named"),
    [
        ({LR: {"values": [0.1, 20]}}, f"parameters.{LR}", "Trial 1"),
        ({UNITS: {"values": [2, 0]}}, f"parameters.{UNITS}", "Trial 1"),
        ({"network.layers[5].units": {"values": [2]}}, "parameters.network.layers[5].units", ""),
        # Softmax is for the last layer only: the fault is in the trial, at that parameter.
        (
            {"network.layers[0].activation": {"values": ["tanh", "softmax"]}},
            "parameters.network.layers[0].activation",
            "Trial 1",
        ),
    ],
)
def test_an_invalid_combination_is_a_422_naming_it_and_stores_nothing(
    client, redis_conn, parameters, key, named
):
    response = client.post("/v1/sweeps", json=sweep_body(parameters, parallel=2))
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert key in body["errors"], body
    assert named in body["message"]
    assert redis_conn.keys("bp:*") == []
    assert queue.training_queue(redis_conn).count == 0


def test_a_trial_over_the_budget_is_named(make_app, redis_conn):
    client = make_app(MAX_PARAMETERS=20).test_client()
    response = client.post("/v1/sweeps", json=sweep_body({UNITS: {"values": [2, 64]}}))
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["message"].startswith(f"Trial 1 ({UNITS}=64) is invalid")
    assert list(body["errors"]) == [f"parameters.{UNITS}"]
    assert redis_conn.keys("bp:*") == []


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        ({"objective": {"metric": "val_loss"}}, "objective.metric"),  # no validation set
        ({"objective": {"metric": "accuracy"}}, "objective.metric"),  # a regression
        ({"max_trials": 3}, "max_trials"),  # a grid
        ({"parameters": {LR: {"distribution": "uniform", "low": 0.1}}}, f"parameters.{LR}.high"),
        ({"parameters": {"data.X": {"values": [1]}}}, "parameters"),
        ({"parameters": {LR: None, "": {}}}, f"parameters.{LR}"),  # was a 500
        ({"parameters": {LR: 0.1}}, f"parameters.{LR}"),
        # past MAX_ACTIVE_JOBS: it could never run
        ({"parallel": from_env({})["MAX_ACTIVE_JOBS"] + 1}, "parallel"),
    ],
)
def test_bad_sweep_fields_are_422_naming_them(client, redis_conn, edit, key):
    body = sweep_body({LR: {"values": [0.1, 0.2]}})
    del body["job"]["training"]["validation"]
    body.update(edit)
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 422, response.get_json()
    assert any(k.startswith(key) for k in response.get_json()["errors"]), response.get_json()
    assert redis_conn.keys("bp:*") == []


def test_too_many_trials_is_422(make_app):
    client = make_app(MAX_SWEEP_TRIALS=5).test_client()
    body = sweep_body({LR: {"values": [0.1, 0.2, 0.3]}, UNITS: {"values": [1, 2]}})
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 422
    assert "6 trials" in response.get_json()["errors"]["parameters"][0]


def test_a_dry_run_sums_the_trials_estimates_and_stores_nothing(client, redis_conn):
    one = client.post("/v1/jobs?dry_run=true", json=BASE_JOB).get_json()["estimate"]
    body = sweep_body({"training.epochs": {"values": [40, 40, 40]}})
    response = client.post("/v1/sweeps?dry_run=true", json=body)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["trials"] == 3
    assert answer["estimate"]["total_flops"] == 3 * one["total_flops"]
    assert redis_conn.keys("bp:*") == []


def test_the_whole_sweep_counts_against_the_compute_budget(make_app, client):
    one = client.post("/v1/jobs?dry_run=true", json=BASE_JOB).get_json()["estimate"]
    client = make_app(MAX_TRAINING_FLOPS=2.5 * one["total_flops"]).test_client()
    two = sweep_body({LR: {"values": [0.1, 0.2]}})
    assert client.post("/v1/sweeps?dry_run=true", json=two).status_code == 200
    three = sweep_body({LR: {"values": [0.1, 0.2, 0.3]}})
    response = client.post("/v1/sweeps", json=three)
    assert response.status_code == 422
    assert "compute budget" in response.get_json()["errors"]["parameters"][0]


def test_a_sweep_takes_parallel_quota_slots(make_app, redis_conn):
    client = make_app(MAX_ACTIVE_JOBS=3).test_client()
    body = sweep_body({LR: {"values": [0.1, 0.2, 0.3, 0.4, 0.5]}}, parallel=2)
    assert client.post("/v1/sweeps", json=body).status_code == 202
    assert redis_conn.scard(store.tenant_active_key("public")) == 2
    refused = client.post("/v1/sweeps", json=body)
    assert refused.status_code == 429, refused.get_json()
    assert refused.headers["Retry-After"] == "30"  # as a job's refusal says it
    assert client.post("/v1/jobs", json=BASE_JOB).status_code == 202  # the third slot
    # The refused sweep left nothing: one sweep, its five trials and the job.
    assert len(redis_conn.keys("bp:sweep:*:trials")) == 1
    assert redis_conn.zcard(store.JOBS_INDEX) == 6


def test_a_trial_canceled_while_waiting_is_skipped_and_the_cap_kept(client, redis_conn):
    body = sweep_body({LR: {"values": [0.1, 0.2, 0.3]}}, parallel=1)
    ids = [t["job_id"] for t in client.post("/v1/sweeps", json=body).get_json()["trials"]]
    assert client.delete(f"/v1/jobs/{ids[1]}").status_code == 200  # waiting: canceled at once
    assert client.delete(f"/v1/jobs/{ids[0]}").status_code == 200  # queued: canceled at once
    # Trial 0's slot went to trial 2, the next still queued, which is now in rq.
    rq = queue.training_queue(redis_conn)
    assert rq.job_ids == [f"{ids[0]}-1", f"{ids[2]}-1"]
    assert store.get_job(redis_conn, ids[2])["rq_job_id"] == f"{ids[2]}-1"
    assert store.get_job(redis_conn, ids[1]).get("rq_job_id") is None


def test_deleting_a_sweep_reads_its_trials_records_in_one_round_trip(
    client, redis_conn, round_trips
):
    body = sweep_body({LR: {"values": [0.1, 0.2, 0.3, 0.4, 0.5]}}, parallel=1)
    sweep_id = client.post("/v1/sweeps", json=body).get_json()["id"]
    del round_trips[:]
    response = client.delete(f"/v1/sweeps/{sweep_id}")
    assert response.status_code == 200, response.get_json()
    assert {t["status"] for t in response.get_json()["trials"]} == {"canceled"}
    # The sweep's record and its 5 trials' (one pipeline) for the view before, the same after,
    # and the trials' once for sweeping.cancel: not one read a trial.
    reads = [name for name in round_trips if name == "HGETALL"]
    assert len(reads) == 5, len(reads)


def test_sweeps_are_listed_newest_first_in_pages(client):
    body = sweep_body({LR: {"values": [0.1]}})
    ids = [client.post("/v1/sweeps", json=body).get_json()["id"] for _ in range(3)]
    first = client.get("/v1/sweeps?limit=2").get_json()
    assert [s["id"] for s in first["sweeps"]] == ids[:0:-1]
    assert first["sweeps"][0]["trials"] == 1 and first["sweeps"][0]["canceled"] is False
    rest = client.get(f"/v1/sweeps?limit=2&cursor={first['next_cursor']}").get_json()
    assert [s["id"] for s in rest["sweeps"]] == ids[:1] and rest["next_cursor"] is None
    unknown = client.get(f"/v1/sweeps?cursor={'0' * 32}")
    assert unknown.status_code == 422 and "cursor" in unknown.get_json()["errors"]


@pytest.mark.parametrize("kind", ["job", "sweep", "dataset"])
def test_an_unknown_id_or_cursor_is_answered_alike_for_each_kind(client, kind):
    unknown = "0" * 32
    missing = client.get(f"/v1/{kind}s/{unknown}")
    assert missing.status_code == 404
    assert missing.get_json()["message"] == f"No {kind} {unknown}."
    if kind != "dataset":  # datasets are not listed
        page = client.get(f"/v1/{kind}s?cursor={unknown}")
        assert page.status_code == 422
        assert page.get_json()["errors"] == {"cursor": [f"Names no {kind}."]}


def test_a_missing_object_on_a_path_is_created(client, redis_conn):
    body = sweep_body({"preprocessing.standardize": {"values": [False, True]}})
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 202, response.get_json()
    specs = [store.load_spec(redis_conn, t["job_id"]) for t in response.get_json()["trials"]]
    assert [spec["preprocessing"]["standardize"] for spec in specs] == [False, True]


def test_deleting_a_finished_sweep_is_409(client):
    body = sweep_body({LR: {"values": [0.1]}})
    sweep = client.post("/v1/sweeps", json=body).get_json()
    assert train_job(sweep["trials"][0]["job_id"])["model_id"] == sweep["trials"][0]["job_id"]
    assert client.get(f"/v1/sweeps/{sweep['id']}").get_json()["status"] == "finished"
    response = client.delete(f"/v1/sweeps/{sweep['id']}")
    assert response.status_code == 409, response.get_json()
    assert client.get(f"/v1/sweeps/{sweep['id']}").get_json()["status"] == "finished"


def test_waiting_trials_are_not_taken_for_orphans_by_the_reaper(client, redis_conn):
    body = sweep_body({LR: {"values": [0.1, 0.2, 0.3]}}, parallel=1)
    ids = [t["job_id"] for t in client.post("/v1/sweeps", json=body).get_json()["trials"]]
    suspects: set = set()
    for _ in range(3):  # an orphan is requeued on its second pass
        reap(redis_conn, suspects, set(), Settings())
    assert queue.training_queue(redis_conn).job_ids == [f"{ids[0]}-1"]
    assert [store.get_job(redis_conn, i).get("rq_job_id") for i in ids[1:]] == [None, None]


def test_a_trial_end_reads_the_trial_once(client, redis_conn, round_trips):
    body = sweep_body({LR: {"values": [0.1, 0.2]}}, parallel=1)
    ids = [t["job_id"] for t in client.post("/v1/sweeps", json=body).get_json()["trials"]]
    redis_conn.ping()  # its connection is open before the count
    del round_trips[:]
    assert store.cancel_if_queued(redis_conn, ids[0], store.now_iso(), "public")
    # One read of what the status change asks for (its sweep), then the next trial's record:
    # the ended trial's sweep and tenant are not read again.
    reads = [name for name in round_trips if name in ("HGET", "HMGET", "HGETALL")]
    assert reads == ["HMGET", "HGETALL"], " ".join(round_trips)
    assert queue.training_queue(redis_conn).job_ids == [f"{ids[0]}-1", f"{ids[1]}-1"]


def test_recording_a_trial_end_twice_queues_one_next_trial(client, redis_conn):
    body = sweep_body({LR: {"values": [0.1, 0.2, 0.3]}}, parallel=1)
    ids = [t["job_id"] for t in client.post("/v1/sweeps", json=body).get_json()["trials"]]
    assert client.delete(f"/v1/jobs/{ids[0]}").status_code == 200
    assert sweeps.trial_ended(redis_conn, ids[0]) is None  # ended already: nothing more
    assert queue.training_queue(redis_conn).job_ids == [f"{ids[0]}-1", f"{ids[1]}-1"]


def test_a_sweeps_callbacks_are_resolved_once_not_once_a_trial(make_app, monkeypatch):
    """Trials cannot set callbacks, so the first trial's check (the secret, and every URL's
    host resolved to a public address) holds for the others: 12 trials, 1 lookup."""
    client = make_app(WEBHOOK_ALLOW_PRIVATE=True).test_client()
    client.post("/v1/webhooks/secret")
    lookups = []
    resolve = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        lookups.append(host)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    body = sweep_body({LR: {"values": [0.01 * (i + 1) for i in range(12)]}})
    body["job"]["callbacks"] = [{"url": "http://localhost:9/hook"}]
    answer = client.post("/v1/sweeps?dry_run=true", json=body)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["trials"] == 12
    assert lookups == ["localhost"]
    body["job"]["callbacks"] = [{"url": "http://no-such-host.invalid/hook"}]
    answer = client.post("/v1/sweeps?dry_run=true", json=body)
    assert answer.status_code == 422
    assert "callbacks.0.url" in json.dumps(answer.get_json()["errors"])
