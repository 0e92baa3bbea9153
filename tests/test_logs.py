"""Structured logs: LOG_FORMAT=json makes every line one JSON object; a request's lines carry
its request_id (taken from X-Request-ID or made up, and echoed), a job's lines carry its
job_id and the request_id that submitted it, in the API, the worker and make run's output."""

import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml

import store
from devtools.probes import answers_ok, free_port
from devtools.processes import wait_until
from store import logs
from tests.support.jobs import GOOD_JOB, edited
from tests.support.live import final, submit, wait_for
from workers.tasks import train_job

ROOT = Path(__file__).resolve().parent.parent
HEX32 = set("0123456789abcdef")


@contextmanager
def captured(fmt: str, *names: str) -> Iterator[io.StringIO]:
    """The lines the loggers ``names`` write at INFO and above, through the service's handler."""
    stream = io.StringIO()
    handler = logs.handler(fmt, stream)
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as a JSON object (failing on any line that is not one)."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


# -- the formats --------------------------------------------------------------------------


def test_a_json_line_carries_the_bound_ids_and_an_explicit_field_wins():
    log = logging.getLogger("tests.logs.example")
    with captured("json", log.name) as out:
        with logs.bound(request_id="r-1", job_id="j-1"):
            log.info("about %s", "the job")
            log.info("about another", extra={"job_id": "j-2"})
        log.warning("about nothing")
        try:
            raise ZeroDivisionError("on purpose")
        except ZeroDivisionError:
            log.exception("failed")
    first, second, third, fourth = json_lines(out.getvalue())
    assert first["message"] == "about the job"
    assert (first["request_id"], first["job_id"]) == ("r-1", "j-1")
    assert (second["request_id"], second["job_id"]) == ("r-1", "j-2")
    assert "request_id" not in third and "job_id" not in third
    assert {"time", "level", "logger"} <= set(first)
    assert third["level"] == "WARNING" and third["logger"] == log.name
    assert "ZeroDivisionError" in fourth["exc_info"]


def test_a_text_line_shows_the_bound_ids_after_the_message():
    log = logging.getLogger("tests.logs.text")
    with captured("text", log.name) as out:
        with logs.bound(request_id="r-1", job_id=None):
            log.info("hello")
    assert out.getvalue().rstrip().endswith("tests.logs.text INFO hello request_id=r-1")


def test_log_format_is_text_by_default_and_refuses_anything_but_text_or_json():
    assert logs.log_format({}) == "text"
    assert logs.log_format({"LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.log_format({"LOG_FORMAT": "xml"})


def test_compose_logs_json_and_make_run_keeps_text_by_default():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("api", "worker"):
        assert compose["services"][name]["environment"]["LOG_FORMAT"] == "json"
    assert "LOG_FORMAT" not in (ROOT / "Makefile").read_text()


# -- request ids in the API -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123.x:y_Z", True),
        ("f" * 128, True),
        ("f" * 129, False),  # too long
        ("two words", False),
        ("quote\"'", False),
        ("", False),
    ],
)
def test_the_request_id_is_echoed_when_sensible_and_made_up_otherwise(client, sent, kept):
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    echoed = response.headers["X-Request-ID"]
    if kept:
        assert echoed == sent
    else:
        assert len(echoed) == 32 and set(echoed) <= HEX32


def test_every_answer_carries_a_request_id_errors_too(client):
    ids = set()
    for response in (
        client.get("/healthz"),
        client.get("/no/such/page"),
        client.post("/v1/jobs", data="x", content_type="text/plain"),  # 415
        client.post("/v1/jobs", json=edited(("training.epochs", 0))),  # 422
    ):
        assert response.status_code in (200, 404, 415, 422)
        ids.add(response.headers["X-Request-ID"])
    assert len(ids) == 4  # a new one each time


def test_the_submitting_request_id_is_stored_with_the_job_and_on_its_lines(client, redis_conn):
    with captured("json", "service", "workers") as out:
        response = client.post("/v1/jobs", json=GOOD_JOB, headers={"X-Request-ID": "req-42"})
        assert response.status_code == 202
        job_id = response.get_json()["id"]
        assert store.get_job(redis_conn, job_id)["request_id"] == "req-42"
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    (queued,) = [line for line in json_lines(out.getvalue()) if "queued" in line["message"]]
    assert (queued["job_id"], queued["request_id"]) == (job_id, "req-42")
    assert queued["logger"] == "service.submission"


def test_the_worker_lines_about_a_job_carry_its_id_and_its_request_id(client):
    response = client.post("/v1/jobs", json=GOOD_JOB, headers={"X-Request-ID": "req-7"})
    job_id = response.get_json()["id"]
    with captured("json", "workers") as out:
        assert train_job(job_id)["model_id"] == job_id  # the rq task, in this process
    lines = json_lines(out.getvalue())
    assert any("finished after" in line["message"] for line in lines), lines
    assert all((line["job_id"], line["request_id"]) == (job_id, "req-7") for line in lines)


# -- make run, with LOG_FORMAT=json: the supervisor, Redis, the API and a worker --------------


@pytest.mark.process
def test_make_run_writes_one_json_object_per_line_with_the_ids(tmp_path):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        "LOG_FORMAT": "json",
        "WORKERS": "1",
        "WEB_CONCURRENCY": "1",
        "PORT": str(port),
        "REDIS_PORT": str(free_port()),
        "VAR_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(ROOT),
    }
    # To a file, not a pipe: nobody reads a pipe until the end, and a full one would block the
    # supervisor's relay, then its children.
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_ok(f"{base}/readyz"), 60, process, "make run")
        job_id = submit(base, GOOD_JOB, **{"X-Request-ID": "req-run-1"})
        assert wait_for(base, job_id, final, "an end")["status"] == "finished"
        assert requests.get(f"{base}/healthz", timeout=10).headers["X-Request-ID"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    output = log_path.read_text()
    assert process.returncode == 0, output[-3000:]

    lines = json_lines(output)
    sources = ("run", "redis", "api", "worker.1")
    by_source = {source: [line for line in lines if line["source"] == source] for source in sources}
    assert all(by_source.values()), {k: len(v) for k, v in by_source.items()}
    assert any("started worker.1" in line["message"] for line in by_source["run"])

    # The API: the access line of the POST carries the id sent; the line of the job it queued
    # carries both ids.
    posts = [line for line in by_source["api"] if line.get("path") == "/v1/jobs"]
    assert [(line["request_id"], line["status"]) for line in posts] == [("req-run-1", 202)]
    (queued,) = [line for line in by_source["api"] if line["logger"] == "service.submission"]
    assert (queued["job_id"], queued["request_id"]) == (job_id, "req-run-1")
    # The worker: its lines about the job carry both ids; rq's own carry the job's.
    worker = [line for line in by_source["worker.1"] if line.get("job_id") == job_id]
    ours = [line for line in worker if line["logger"].startswith("workers.")]
    assert any("finished after" in line["message"] for line in ours)
    assert all(line["request_id"] == "req-run-1" for line in ours)
    assert any("Job OK" in line["message"] for line in worker)
