"""The Python client (client/backprop_client) against the live stack."""

import copy
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml

from backprop_client import (
    Alias,
    Client,
    Conflict,
    NotFound,
    RateLimited,
    Sweep,
    ValidationError,
)
from backprop_client.client import ROUTES
from backprop_client.sse import Event, lines, parse
from tests.support.apps import serve_api
from tests.support.jobs import GOOD_JOB, LONG_JOB, XOR_X, XOR_Y, edited

OPENAPI = Path(__file__).resolve().parents[1] / "openapi.yaml"
# GOOD_JOB, long enough for a few progress flushes.
JOB = {**GOOD_JOB, "training": {**GOOD_JOB["training"], "epochs": 300}}
DEADLINE = 90  # seconds a sweep or job may take before a test gives up (not a timing assertion)
LR = "training.optimizer.learning_rate"


@pytest.fixture
def bp(live_server):
    """A client of the live server, straight to 127.0.0.1 whatever proxy is set."""
    session = requests.Session()
    session.trust_env = False
    with session:
        yield Client(live_server, session=session)


def columns(history) -> dict:
    """A history as a dict of lists, whether it came as a dict or a DataFrame."""
    return history if isinstance(history, dict) else history.to_dict("list")


def test_every_route_the_client_calls_is_in_the_openapi_document():
    paths = yaml.safe_load(OPENAPI.read_text())["paths"]
    missing = [
        (method, path)
        for method, path in ROUTES.values()
        if method.lower() not in paths.get(path, {})
    ]
    assert ROUTES and missing == []


def test_submit_wait_and_history_equal_get_history(bp, live_server, start_worker):
    start_worker()
    job = bp.submit(network=JOB["network"], training=JOB["training"], X=XOR_X, y=np.array(XOR_Y))
    assert job.status == "queued"
    record = job.wait(timeout=60)
    assert record["status"] == "finished" and record["model_id"]
    expected = requests.get(f"{live_server}/v1/jobs/{job.id}/history", timeout=10).json()
    history = columns(job.history())
    assert history == expected and history["epoch"] == list(range(1, 301))


def test_predict_and_download_equal_the_api(bp, live_server, start_worker, tmp_path):
    start_worker()
    job = bp.submit(**copy.deepcopy(GOOD_JOB))
    job.wait(timeout=60)
    model = job.model()
    rows = [[0, 0], [1, 0], [0.5, 0.25]]
    expected = requests.post(
        f"{live_server}/v1/models/{model.id}/predict", json={"inputs": rows}, timeout=10
    ).json()
    assert model.predict(np.array(rows)) == expected
    npz = np.load(model.download(tmp_path / "w.npz"))
    weights = requests.get(f"{live_server}/v1/models/{model.id}/weights", timeout=10).json()
    assert np.array_equal(npz["W0"], np.array(weights[0]["W"]))
    onnx = requests.get(f"{live_server}/v1/models/{model.id}/onnx", timeout=10).content
    assert Path(model.download(tmp_path / "m.onnx", format="onnx")).read_bytes() == onnx


def test_a_csv_upload_trains_and_equals_the_same_arrays(bp, start_worker, tmp_path):
    start_worker()
    path = tmp_path / "xor.csv"
    lines = [f"{x[0]},{x[1]},{y[0]}\n" for x, y in zip(XOR_X, XOR_Y, strict=True)]
    path.write_text("a,b,y\n" + "".join(lines))
    dataset = bp.upload_dataset(path, target="y")
    assert (dataset.info["rows"], dataset.info["columns"], dataset.info["outputs"]) == (4, 2, 1)
    # The same numbers as an in-memory .npz: the same dataset.
    assert bp.upload_dataset((np.array(XOR_X), np.array(XOR_Y))).id == dataset.id
    job = bp.submit(network=GOOD_JOB["network"], training=GOOD_JOB["training"], dataset=dataset)
    record = job.wait(timeout=60)
    assert record["status"] == "finished" and job.record["dataset_id"] == dataset.id


def test_an_invalid_job_raises_validation_error_with_its_fields(bp):
    training = copy.deepcopy(GOOD_JOB["training"])
    training["optimizer"]["learning_rat"] = 0.1
    with pytest.raises(ValidationError) as raised:
        bp.submit(network=GOOD_JOB["network"], training=training, X=XOR_X, y=XOR_Y)
    assert raised.value.status_code == 422
    assert raised.value.errors == {"training.optimizer.learning_rat": ["Unknown field."]}


def test_unknown_ids_raise_not_found(bp):
    with pytest.raises(NotFound):
        bp.job("0" * 32)
    with pytest.raises(NotFound):
        bp.model("0" * 32)


def test_cancel_a_queued_job_and_wait_returns_it(bp):
    job = bp.submit(**LONG_JOB)  # no worker: it stays queued until canceled
    assert job.cancel()["status"] == "canceled"
    assert job.wait(timeout=30)["status"] == "canceled"
    assert [listed["id"] for listed in bp.list_jobs()[0]] == [job.id]


@pytest.fixture
def strict_bp(redis_url):
    """A client of a server that refuses every stream and long poll and one submit a second."""
    with serve_api(redis_url, EVENTS_MAX_STREAMS="0", RATE_LIMIT_SUBMIT="1/second") as url:
        session = requests.Session()
        session.trust_env = False
        with session:
            yield Client(url, session=session)


def test_submit_retries_429_and_wait_falls_back_to_polling(strict_bp, start_worker):
    start_worker()
    jobs = [strict_bp.submit(**GOOD_JOB) for _ in range(2)]  # the second is told 429 first
    assert len({job.id for job in jobs}) == 2
    assert [listed["id"] for listed in strict_bp.list_jobs()[0]] == [jobs[1].id, jobs[0].id]
    # The events stream answers 503 here: wait polls instead.
    assert [job.wait(timeout=60)["status"] for job in jobs] == ["finished", "finished"]


def test_events_resume_after_last_event_id(bp, start_worker):
    start_worker()
    job = bp.submit(**JOB)
    job.wait(timeout=60)
    events = list(job.events(last_event_id="100"))
    history = [data for name, data in events if name == "history"]
    assert history and history[0]["epoch"][0] == 101
    assert [e for data in history for e in data["epoch"]] == list(range(101, 301))
    final = {"status": "finished", "error": None, "model_id": job.record["model_id"]}
    assert events[-1] == ("status", final)


def test_the_sse_parser_joins_chunks_and_skips_comments():
    chunks = [b"event: progress\r", b'\nid: 7\ndata: {"a":', b' "\xe2\x80\xa8"}\n\n: hb\n\n']
    assert list(parse(lines(chunks))) == [Event("progress", "7", '{"a": "\u2028"}')]


def test_list_jobs_passes_the_filters_to_the_server_and_update_job_relabels(bp):
    # No worker: every job stays queued, or is canceled here.
    a = bp.submit(**LONG_JOB, name="sweep-a", tags=["x", "y"], metadata={"lr": 0.1})
    b = bp.submit(**LONG_JOB, name="sweep-b", tags=["x"])
    c = bp.submit(**LONG_JOB, name="other", tags=["y"])
    c.cancel()

    def ids(**filters):
        return [job["id"] for job in bp.list_jobs(**filters)[0]]

    assert ids(tags=["x"]) == [b.id, a.id]
    assert ids(tags=["x", "y"]) == [a.id]
    assert ids(name="sweep-", sort="created_at") == [a.id, b.id]
    assert ids(status="canceled") == [c.id]
    assert ids(status="queued", tags=["y"]) == [a.id]
    updated = bp.update_job(b.id, tags=["y"], name=None)
    assert (updated["name"], updated["tags"]) == (None, ["y"])
    assert ids(tags=["y"], status="queued") == [b.id, a.id]
    spec = bp.job_spec(a.id)
    assert spec["metadata"] == {"lr": 0.1} and spec["training"]["epochs"] == 1_000_000
    with pytest.raises(ValidationError) as raised:
        bp.list_jobs(sort="weights")
    assert "sort" in raised.value.errors


def test_a_sweep_runs_its_grid_and_names_the_best_trial(bp, live_server, start_worker):
    start_worker()
    base = {**JOB, "training": {**JOB["training"], "epochs": 50}}
    grid = {LR: {"values": [0.05, 0.5, 2.0]}}
    objective = {"metric": "loss", "goal": "min"}
    estimate = bp.sweep(**base, parameters=grid, objective=objective, dry_run=True)
    assert (estimate["valid"], estimate["trials"]) == (True, 3)
    assert bp.list_jobs()[0] == []  # a dry run queues nothing

    sweep = bp.sweep(**base, parameters=grid, objective=objective, parallel=2, name="lr")
    assert isinstance(sweep, Sweep) and sweep.status == "running"
    record = sweep.wait(timeout=DEADLINE)
    assert record == requests.get(f"{live_server}/v1/sweeps/{sweep.id}", timeout=10).json()
    assert sweep.status == "finished" and sweep.counts["finished"] == 3
    assert [trial["parameters"] for trial in sweep.trials] == [{LR: v} for v in (0.05, 0.5, 2.0)]
    best = min(sweep.trials, key=lambda trial: trial["objective_value"])
    assert sweep.best_trial == best
    history = columns(sweep.best_job().history())
    assert best["objective_value"] == min(history["loss"])
    assert sweep.best_model().id == best["job_id"]
    listed = {job["id"] for job in bp.list_jobs(sweep_id=sweep.id)[0]}
    assert listed == {trial["job_id"] for trial in sweep.trials}


def test_a_sweep_cancels_and_refuses_an_invalid_trial(bp):
    # No worker: the first trial stays queued, the others wait for it.
    grid = {LR: {"values": [0.1, 0.2, 0.3]}}
    sweep = bp.sweep(**LONG_JOB, parameters=grid, objective={"metric": "loss"})
    with pytest.raises(TimeoutError):
        sweep.wait(timeout=0.5)
    assert sweep.cancel()["status"] == "canceled"
    assert sweep.wait(timeout=DEADLINE)["counts"]["canceled"] == 3
    assert bp.get_sweep(sweep.id).record == sweep.record and sweep.best_trial is None
    with pytest.raises(ValidationError) as raised:
        bp.sweep(**LONG_JOB, parameters={LR: {"values": [0.1, -1.0]}}, objective={"metric": "loss"})
    assert raised.value.status_code == 422 and "Trial 1" in raised.value.message
    with pytest.raises(NotFound):
        bp.get_sweep("0" * 32)


def test_aliases_name_models_for_predict_and_warm_starts(bp, live_server, start_worker):
    start_worker()
    first, second = (
        bp.submit(**edited(("network.seed", seed))).wait(timeout=DEADLINE)["model_id"]
        for seed in (1, 2)
    )
    made = bp.set_alias("production", first)
    assert made == Alias("production", first, made.history) and len(made.history) == 1
    rows = [[0, 1], [1, 1]]
    assert bp.model("production").id == first
    assert bp.predict("production", rows) == bp.model(first).predict(rows)
    moved = bp.set_alias("production", bp.model(second))
    assert (moved.model_id, moved.history[0]["from"], moved.history[0]["to"]) == (
        second,
        first,
        second,
    )
    assert [(move["from"], move["to"]) for move in bp.alias("production").history] == [
        (first, second),
        (None, first),
    ]
    expected = requests.post(
        f"{live_server}/v1/models/{second}/predict", json={"inputs": rows}, timeout=10
    ).json()
    assert bp.predict("production", rows) == expected
    assert bp.aliases() == {"production": second}

    child = bp.submit(**GOOD_JOB, initial_model_id="production", keep_preprocessing=False)
    assert child.wait(timeout=DEADLINE)["status"] == "finished"
    assert child.model().info["parent_id"] == second

    with pytest.raises(ValidationError) as raised:
        bp.set_alias("a" * 32, first)  # 32 hex digits read as a model id
    assert "name" in raised.value.errors
    bp.delete_alias("production")
    assert bp.aliases() == {}
    with pytest.raises(NotFound):
        bp.alias("production")
    with pytest.raises(NotFound):
        bp.predict("production", rows)


def test_the_spec_of_a_warm_started_job_names_its_initial_model(bp, start_worker):
    # Server gap (service/schemas.py JobSpecSchema): GET /v1/jobs/{id}/spec, "the job as
    # submitted", leaves out initial_model_id and keep_preprocessing. Fails until it shows them.
    start_worker()
    parent = bp.submit(**GOOD_JOB).wait(timeout=DEADLINE)["model_id"]
    child = bp.submit(**GOOD_JOB, initial_model_id=parent)
    spec = bp.job_spec(child.id)
    assert (spec.get("initial_model_id"), spec.get("keep_preprocessing")) == (parent, True)


def test_job_update_changes_only_what_is_given(bp):
    job = bp.submit(**LONG_JOB, name="first", tags=["a"], metadata={"lr": 0.1})
    assert job.update(tags=["b", "c"])["tags"] == ["b", "c"]
    assert (job.record["name"], job.record["metadata"]) == ("first", {"lr": 0.1})
    job.update(name=None, metadata={"lr": 0.2})
    assert (job.record["name"], job.record["tags"], job.record["metadata"]) == (
        None,
        ["b", "c"],
        {"lr": 0.2},
    )
    assert bp.job(job.id).record["metadata"] == {"lr": 0.2}
    with pytest.raises(ValidationError) as raised:
        job.update(tags=[""])
    assert "tags.0" in raised.value.errors


def test_an_idempotency_key_reused_with_another_body_raises_conflict(bp):
    key = "client-test-key-1"
    job = bp.submit(**LONG_JOB, idempotency_key=key)
    assert bp.submit(**LONG_JOB, idempotency_key=key).id == job.id  # a replay: the same job
    with pytest.raises(Conflict) as raised:
        bp.submit(**LONG_JOB, name="another body", idempotency_key=key)
    assert raised.value.status_code == 409
    assert [listed["id"] for listed in bp.list_jobs()[0]] == [job.id]


def test_wait_raises_timeout_error_when_the_timeout_expires(bp):
    job = bp.submit(**LONG_JOB)  # no worker: it stays queued
    with pytest.raises(TimeoutError):
        job.wait(timeout=1)
    assert job.refresh()["status"] == "queued"


def test_wait_raises_timeout_error_while_polling(strict_bp):
    job = strict_bp.submit(**LONG_JOB)  # no worker; the server refuses streams: wait polls
    with pytest.raises(TimeoutError):
        job.wait(timeout=1.5)
    assert job.refresh()["status"] == "queued"


def test_rate_limited_is_raised_once_the_retries_are_used_up(redis_url):
    with serve_api(redis_url, RATE_LIMIT_SUBMIT="1/minute") as url:
        session = requests.Session()
        session.trust_env = False
        posts = []
        session.hooks["response"].append(
            lambda response, **kwargs: (
                posts.append(response.status_code) if response.request.method == "POST" else None
            )
        )
        with session:
            bp = Client(url, session=session, retries=2, max_retry_sleep=0.1)
            job = bp.submit(**LONG_JOB)
            with pytest.raises(RateLimited) as raised:
                bp.submit(**LONG_JOB)
            assert posts == [202, 429, 429, 429]  # the first, then 1 + 2 retries
            assert raised.value.retry_after > 1  # the server's Retry-After, kept
            assert [listed["id"] for listed in bp.list_jobs()[0]] == [job.id]
