"""GET /metrics and the workers' metrics ports, read with prometheus_client's own parser:
requests by route template, predictions, jobs, queue depth and live workers; counts that add
up across two gunicorn processes (and outlive one of them); a real worker's job counters."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

import store
from devtools.probes import free_port
from devtools.processes import wait_until
from tests.support.apps import ROOT, new_app, serve_api
from tests.support.auth import bearer, keyed_app
from tests.support.jobs import DIVERGING_JOB, GOOD_JOB, LONG_JOB, edited, trained, v2_request
from tests.support.live import final, past_epoch, status, submit, wait_for
from workers import metrics as worker_metrics

JOB_ROUTE = "/v1/jobs/<rid:job_id>"
SOME_ID = "0123456789abcdef0123456789abcdef"


def parse(text: str) -> dict[tuple, float]:
    """``{(sample name, ((label, value), ...)): value}`` of a scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 when the scrape does not have it (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return parse(response.get_data(as_text=True))


def scrape_url(url: str) -> dict:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


# -- the API in this process ---------------------------------------------------------------


def test_requests_are_counted_by_route_template_method_and_status(client):
    before = scrape(client)
    client.get(f"/v1/jobs/{SOME_ID}")
    client.get(f"/v1/jobs/{SOME_ID}")
    client.get("/healthz")
    client.get("/no/such/page")
    client.delete("/healthz")
    response = client.get("/metrics")
    after = parse(response.get_data(as_text=True))

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    total = "backprop_http_requests_total"
    assert delta(total, route=JOB_ROUTE, method="GET", status="404") == 2
    assert delta(total, route="/healthz", method="GET", status="200") == 1
    assert delta(total, route="(unmatched)", method="GET", status="404") == 1
    assert delta(total, route="(unmatched)", method="DELETE", status="405") == 1
    latency = "backprop_http_request_duration_seconds_count"
    assert delta(latency, route=JOB_ROUTE, method="GET") == 2
    # Labels are templates: no id, and no made-up path, becomes a time series.
    assert SOME_ID not in response.get_data(as_text=True)
    assert "/no/such/page" not in response.get_data(as_text=True)


def test_queue_depth_and_live_workers_are_read_from_redis_when_scraped(client, redis_conn):
    before = scrape(client)
    for _ in range(2):
        assert client.post("/v1/jobs", json=GOOD_JOB).status_code == 202
    after = scrape(client)
    assert value(after, "backprop_queue_depth", queue="training") == 2
    assert value(after, "backprop_workers_alive") == 0
    assert value(after, "backprop_redis_up") == 1
    submitted = "backprop_jobs_submitted_total"
    assert value(after, submitted) - value(before, submitted) == 2

    store.worker_beat(redis_conn, "some-host:1", 10)
    assert value(scrape(client), "backprop_workers_alive") == 1


def test_a_dry_run_and_a_refused_job_are_not_counted_as_submitted(client):
    submitted = "backprop_jobs_submitted_total"
    before = value(scrape(client), submitted)
    assert client.post("/v1/jobs?dry_run=true", json=GOOD_JOB).status_code == 200
    assert client.post("/v1/jobs", json=edited(("training.epochs", 0))).status_code == 422
    assert value(scrape(client), submitted) == before


def test_canceling_a_queued_job_counts_it_once(client):
    canceled = "backprop_jobs_canceled_total"
    before = value(scrape(client), canceled, stage="queued")
    job_id = client.post("/v1/jobs", json=GOOD_JOB).get_json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 200  # again: harmless, not counted
    assert value(scrape(client), canceled, stage="queued") == before + 1


def test_predictions_on_v1_and_v2_are_timed_and_training_is_counted(client):
    worker_before = parse(generate_latest(worker_metrics.REGISTRY).decode())
    model_id = trained(client, GOOD_JOB)  # train_job in this process: the worker's counters
    worker_after = parse(generate_latest(worker_metrics.REGISTRY).decode())
    for name, labels in [
        ("backprop_jobs_finished_total", {}),
        ("backprop_job_duration_seconds_count", {"status": "finished"}),
    ]:
        assert value(worker_after, name, **labels) - value(worker_before, name, **labels) == 1
    epochs = "backprop_epochs_trained_total"
    assert value(worker_after, epochs) - value(worker_before, epochs) == 5  # GOOD_JOB's epochs

    before = scrape(client)
    assert client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[0, 1]]}).status_code
    infer = client.post(f"/v2/models/{model_id}/infer", json=v2_request([[0, 1], [1, 1]]))
    assert infer.status_code == 200, infer.get_json()
    after = scrape(client)
    count = "backprop_predict_duration_seconds_count"
    assert value(after, count, api="v1") - value(before, count, api="v1") == 1
    assert value(after, count, api="v2") - value(before, count, api="v2") == 1


def test_without_redis_the_scrape_still_answers_and_says_so():
    app = new_app("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        samples = scrape(app.test_client())
    finally:
        app.extensions["redis"].close()
    assert value(samples, "backprop_redis_up") == 0
    assert ("backprop_workers_alive", ()) not in samples
    assert any(name == "backprop_http_requests_total" for name, _ in samples)


def test_with_api_keys_only_an_admin_key_may_scrape(redis_url):
    client = keyed_app(redis_url).test_client()
    assert client.get("/metrics").status_code == 401
    refused = client.get("/metrics", headers=bearer("alice"))
    assert refused.status_code == 403
    assert refused.get_json()["code"] == 403
    assert "admin" in refused.get_json()["message"]
    assert value(scrape(client, **bearer("admin")), "backprop_redis_up") == 1


# -- gunicorn with two web processes, and a real worker ---------------------------------------

HEALTHZ = {"route": "/healthz", "method": "GET", "status": "200"}


def healthz_counts(directory: Path) -> dict[int, float]:
    """GET /healthz answers each web process has counted, by pid, read from its own file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in MultiProcessCollector.merge([str(path)])
            for s in family.samples
        }
        counts[int(path.stem.split("_")[-1])] = value(
            samples, "backprop_http_requests_total", **HEALTHZ
        )
    return counts


def test_the_gunicorn_config_settles_multiprocess_mode_before_the_app_is_imported(tmp_path):
    """Loaded as gunicorn's master loads it, without PROMETHEUS_MULTIPROC_DIR: the config must
    choose a directory before its imports reach prometheus_client, or every web process
    would count alone (and each scrape show one process's share)."""
    script = (
        "import os, runpy\n"
        "config = runpy.run_path('service/gunicorn_conf.py')\n"
        "from prometheus_client import values\n"
        "print(values.ValueClass._multiprocess, os.environ['PROMETHEUS_MULTIPROC_DIR'])\n"
        "config['on_exit'](None)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    multiprocess, directory = result.stdout.split()
    assert multiprocess == "True"
    assert Path(directory).name.startswith("backprop-metrics-")
    assert not Path(directory).exists()  # the server's own directory goes when it exits


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.process
def test_counts_add_up_across_two_web_processes_and_outlive_a_killed_one(redis_url, tmp_path):
    metrics_dir = tmp_path / "metrics"
    env = {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with serve_api(redis_url, **env) as base:
        total = "backprop_http_requests_total"
        before = value(scrape_url(f"{base}/metrics"), total, **HEALTHZ)
        sent = 0
        # A new connection per request, which the kernel hands to either process: go on until
        # both have answered some (each counts in its own file).
        while sent < 20 or sum(n > 0 for n in healthz_counts(metrics_dir).values()) < 2:
            assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
            sent += 1
            assert sent < 1000, f"one process answered everything: {healthz_counts(metrics_dir)}"
        assert value(scrape_url(f"{base}/metrics"), total, **HEALTHZ) == before + sent

        # One web process dies, and gunicorn starts another: its answers still count.
        victim, answered = next((pid, n) for pid, n in healthz_counts(metrics_dir).items() if n)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: not running(victim), 30, what="the killed web process gone")
        assert value(scrape_url(f"{base}/metrics"), total, **HEALTHZ) == before + sent
        assert healthz_counts(metrics_dir)[victim] == answered


@pytest.mark.process
def test_a_real_worker_counts_its_jobs_on_its_own_port(redis_url, start_worker):
    port = free_port()
    start_worker(WORKER_METRICS_PORT=str(port))
    worker_url = f"http://127.0.0.1:{port}/metrics"
    with serve_api(redis_url, WEB_CONCURRENCY="2") as base:
        finished = submit(base, edited(("training.epochs", 50)))
        assert wait_for(base, finished, final, "an end")["status"] == "finished"
        diverged = submit(base, DIVERGING_JOB)
        assert wait_for(base, diverged, final, "an end")["error"]["code"] == "diverged"
        running = submit(base, LONG_JOB)
        wait_for(base, running, past_epoch(1), "training")
        queued = submit(base, GOOD_JOB)  # behind the running job: the only worker is busy
        assert requests.delete(f"{base}/v1/jobs/{queued}", timeout=10).status_code == 200
        assert requests.delete(f"{base}/v1/jobs/{running}", timeout=10).status_code == 202
        assert wait_for(base, running, final, "an end")["status"] == "canceled"

        api = scrape_url(f"{base}/metrics")
        assert value(api, "backprop_jobs_submitted_total") == 4
        assert value(api, "backprop_jobs_canceled_total", stage="queued") == 1
        assert value(api, "backprop_workers_alive") == 1
        trained_epochs = sum(
            status(base, job_id)["progress"]["epoch"] for job_id in (finished, diverged, running)
        )

    worker = scrape_url(worker_url)
    assert value(worker, "backprop_jobs_finished_total") == 1
    assert value(worker, "backprop_jobs_failed_total", code="diverged") == 1
    assert value(worker, "backprop_jobs_canceled_total", stage="started") == 1
    for outcome in ("finished", "failed", "canceled"):
        assert value(worker, "backprop_job_duration_seconds_count", status=outcome) == 1
    # Every epoch trained is counted, once: the three jobs' last progress, summed.
    assert value(worker, "backprop_epochs_trained_total") == trained_epochs
    assert value(worker, "process_resident_memory_bytes") > 0
