"""Redis Sentinel: the API and the workers follow the master that the sentinels report, and a
failover (the master killed mid-training) costs 503s for a few seconds, never a 500 or a job.

Real processes throughout: a master and its replica, three sentinels, gunicorn and an rq
worker, all given REDIS_SENTINELS and a REDIS_URL where nothing listens.
"""

import os
import subprocess
import time

import pytest
import requests

from devtools.processes import stop_all
from scripts.run import WORKER_COMMAND, local
from tests.support.apps import ROOT, STOP_TIMEOUT, serve_api
from tests.support.jobs import GOOD_JOB, long_job
from tests.support.live import final, past_epoch, wait_for
from tests.support.resume import FAST, assert_same_as_uninterrupted
from tests.support.sentinel import MASTER_NAME, sentinel_group, wait_for_failover

pytestmark = [pytest.mark.process, pytest.mark.slow]

NOWHERE = "redis://127.0.0.1:1/0"  # REDIS_URL must not be what the processes use
POLL_SECONDS = 0.2
RECOVERY_DEADLINE = 60  # seconds; a bound on a broken failover, not a timing assertion


@pytest.fixture
def group(tmp_path):
    with sentinel_group(tmp_path) as running:
        yield running


def sentinel_env(group) -> dict[str, str]:
    return {"REDIS_SENTINELS": group.sentinels_env, "REDIS_MASTER_NAME": MASTER_NAME}


def poll(session: requests.Session, base: str, job_id: str) -> list[tuple[str, int, dict]]:
    """A read and a write: GET the running job, POST a small job. ``(what, status, body)``."""
    answers = []
    for what, call in (
        ("get", lambda: session.get(f"{base}/v1/jobs/{job_id}", timeout=30)),
        ("post", lambda: session.post(f"{base}/v1/jobs", json=GOOD_JOB, timeout=30)),
    ):
        response = call()
        answers.append((what, response.status_code, response.json(), response.headers))
    return answers


def test_a_master_killed_mid_training_fails_over_with_503s_and_loses_no_job(group):
    env = sentinel_env(group)
    worker = subprocess.Popen(
        local(WORKER_COMMAND), cwd=ROOT, env={**os.environ, **FAST, **env, "REDIS_URL": NOWHERE}
    )
    try:
        with (
            serve_api(NOWHERE, **env, MAX_ACTIVE_JOBS="1000") as base,
            requests.Session() as session,
        ):
            session.trust_env = False
            running_job = long_job(epochs=1500)
            running = session.post(f"{base}/v1/jobs", json=running_job, timeout=10).json()["id"]
            accepted = [running]
            for _ in range(3):  # these wait behind the running one
                accepted.append(
                    session.post(f"{base}/v1/jobs", json=GOOD_JOB, timeout=10).json()["id"]
                )
            wait_for(base, running, past_epoch(100), "epoch 100")

            old_master = group.master_port()
            group.servers[old_master].kill()  # SIGKILL: no AOF flush, no goodbye to replicas
            killed = time.monotonic()
            seen: list[tuple[float, str, int]] = []
            recovered = failed_over = None
            while recovered is None or time.monotonic() - recovered < 1:
                assert time.monotonic() - killed < RECOVERY_DEADLINE, seen
                for what, code, body, headers in poll(session, base, running):
                    seen.append((round(time.monotonic() - killed, 2), what, code))
                    assert code in (200, 202, 503), (what, code, body)
                    if code == 503:
                        assert body["code"] == 503 and "Redis" in body["message"], body
                        assert int(headers["Retry-After"]) > 0
                    elif what == "post":
                        accepted.append(body["id"])
                if failed_over is None and group.master_port() not in (old_master, None):
                    failed_over = time.monotonic()
                if recovered is None and all(code != 503 for _, _, code in seen[-2:]):
                    recovered = time.monotonic()
                time.sleep(POLL_SECONDS)
            failed_over = failed_over or wait_for_failover(group, old_master)

            for job_id in accepted:
                record = wait_for(base, job_id, final, "an end")
                assert record["status"] == "finished", record
            assert_same_as_uninterrupted(base, running, running_job)
    finally:
        stop_all([worker], STOP_TIMEOUT)

    unavailable = [when for when, _, code in seen if code == 503]
    print(
        f"failover: the sentinels reported the replica as master {failed_over - killed:.2f} s "
        f"after the kill; the API answered 503 {len(unavailable)} times (the last at "
        f"{max(unavailable, default=0):.2f} s) and 2xx again from {recovered - killed:.2f} s; "
        f"{len(accepted)} jobs accepted, all finished"
    )
    assert worker.returncode == 0  # rq's loop lived through the failover and stopped on SIGTERM
