"""Calls to the API under gunicorn: an ``Api`` over a session, or plain functions of its URL."""

import time

import requests

JOB_DEADLINE = 60  # seconds Api waits for a job before giving up (not a timing assertion)
DEADLINE = 90  # seconds wait_for waits, long enough for workers killed and restarted on the way
POLL_INTERVAL = 0.05


class Api:
    """Thin helpers over ``requests`` for the calls every test makes."""

    def __init__(self, base_url: str, session: requests.Session):
        self.base_url, self.session = base_url, session

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=10, **kwargs)

    def post(self, path: str, body: dict) -> requests.Response:
        return self.session.post(self.base_url + path, json=body, timeout=10)

    def submit(self, job: dict) -> str:
        """POST a job, check the 202 answer, and return the job's id."""
        response = self.post("/v1/jobs", job)
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "queued"
        assert response.headers["Location"] == f"/v1/jobs/{body['id']}"
        return body["id"]

    def wait_until_done(self, job_id: str) -> dict:
        """Poll the job until it reaches a final status; return its last record."""
        deadline = time.monotonic() + JOB_DEADLINE
        while True:
            response = self.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.text
            record = response.json()
            if record["status"] in ("finished", "failed", "canceled"):
                return record
            assert time.monotonic() < deadline, f"job {job_id} still {record['status']}"
            time.sleep(POLL_INTERVAL)

    def predict(self, model_id: str, inputs) -> requests.Response:
        return self.post(f"/v1/models/{model_id}/predict", {"inputs": inputs})


def submit(base: str, job: dict, **headers) -> str:
    """POST ``job`` to the server at ``base``; its id, once the 202 is checked."""
    response = requests.post(f"{base}/v1/jobs", json=job, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def status(base: str, job_id: str) -> dict:
    """The job's record, as GET /v1/jobs/{id} shows it."""
    return requests.get(f"{base}/v1/jobs/{job_id}", timeout=10).json()


def wait_for(base: str, job_id: str, predicate, what: str) -> dict:
    """The job's first record that ``predicate`` accepts; fails after DEADLINE, naming ``what``."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        record = status(base, job_id)
        if predicate(record):
            return record
        time.sleep(POLL_INTERVAL)
    raise AssertionError(f"job {job_id} never reached {what}: {record}")


def final(record: dict) -> bool:
    return record["status"] in ("finished", "failed", "canceled")


def past_epoch(k: int, attempt: int | None = None):
    """Started, past epoch ``k`` (in attempt number ``attempt``, when given: a dead worker's
    last progress must not be taken for the next worker's)."""

    def reached(r: dict) -> bool:
        if attempt is not None and r["attempts"] != attempt:
            return False
        return r["status"] == "started" and r["progress"]["epoch"] >= k

    return reached
