"""Tenancy, API keys, rate limits, quotas, compute budgets, and no unsafe deserialisation.

The Flask test client drives the real app against the real Redis of the session; models are
trained by the worker's own task code in this process.
"""

import ast
import hashlib
import runpy
from pathlib import Path

import pytest
import requests

from service import create_app
from service.auth import parse_keys
from tests.conftest import serve_api
from tests.test_api_validation import GOOD_JOB, edited
from workers.tasks import train_job

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"alice": "alice-key", "bob": "bob-key", "admin": "root-key"}
API_KEYS = ",".join(f"{tenant}:{key}" for tenant, key in KEYS.items())


def bearer(tenant: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


@pytest.fixture
def app(redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)  # for train_job, run in this process
    return create_app({"REDIS_URL": redis_url, "TESTING": True, "AUTH_ENV": {"API_KEYS": API_KEYS}})


@pytest.fixture
def client(app):
    return app.test_client()


def submit(client, tenant: str, job: dict = GOOD_JOB) -> str:
    response = client.post("/v1/jobs", json=job, headers=bearer(tenant))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def trained(client, tenant: str) -> str:
    job_id = submit(client, tenant)
    assert train_job(job_id)["model_id"] == job_id
    return job_id


def test_no_key_or_a_wrong_key_is_401(client):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YTpi"}):
        response = client.get("/v1/jobs", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["code"] == 401
    assert client.post("/v1/jobs", json=GOOD_JOB).status_code == 401


def test_probes_need_no_key(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)


READS = [
    ("get", "/v1/jobs/{id}", None),
    ("get", "/v1/jobs/{id}/history", None),
    ("get", "/v1/models/{id}", None),
    ("get", "/v1/models/{id}/weights", None),
    ("post", "/v1/models/{id}/predict", {"inputs": [[0, 1]]}),
    ("delete", "/v1/jobs/{id}", None),
    ("delete", "/v1/models/{id}", None),
]


@pytest.mark.parametrize(("method", "url", "body"), READS)
def test_another_tenant_gets_404(client, method, url, body):
    job_id = trained(client, "alice")
    call = getattr(client, method)
    kwargs = {"json": body} if body is not None else {}
    response = call(url.format(id=job_id), headers=bearer("bob"), **kwargs)
    assert response.status_code == 404
    assert response.get_json()["code"] == 404
    mine = call(url.format(id=job_id), headers=bearer("alice"), **kwargs)
    assert mine.status_code in (200, 204, 409)  # 409: deleting a finished job's run


def test_bob_cannot_cancel_alices_queued_job(client):
    job_id = submit(client, "alice")
    assert client.delete(f"/v1/jobs/{job_id}", headers=bearer("bob")).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer("alice")).get_json()["status"] == (
        "queued"
    )


def test_listing_is_per_tenant_and_admin_sees_all(client):
    alice = {submit(client, "alice") for _ in range(2)}
    bob = {submit(client, "bob")}
    listed = {
        tenant: {j["id"] for j in client.get("/v1/jobs", headers=bearer(tenant)).get_json()["jobs"]}
        for tenant in KEYS
    }
    assert listed["alice"] == alice
    assert listed["bob"] == bob
    assert listed["admin"] == alice | bob
    assert (
        client.get(f"/v1/models/{trained(client, 'bob')}", headers=bearer("admin")).status_code
        == 200
    )


def test_keys_file_holds_plain_keys_or_sha256_digests(tmp_path):
    digest = hashlib.sha256(b"carol-key").hexdigest()
    path = tmp_path / "keys"
    path.write_text(f"# tenants\ndave:dave-key\ncarol:sha256:{digest}\n")
    ring = parse_keys({"API_KEYS_FILE": str(path)})
    assert {t.name for t in ring.values()} == {"carol", "dave"}
    assert "carol-key" not in repr(ring) and "dave-key" not in repr(ring)
    assert ring[digest].name == "carol"
    with pytest.raises(ValueError):
        parse_keys({"API_KEYS": "no-colon-here"})


def test_idempotency_keys_are_per_tenant(client):
    headers = {"Idempotency-Key": "same"}
    a = client.post("/v1/jobs", json=GOOD_JOB, headers={**bearer("alice"), **headers})
    b = client.post("/v1/jobs", json=GOOD_JOB, headers={**bearer("bob"), **headers})
    assert a.status_code == b.status_code == 202
    assert a.get_json()["id"] != b.get_json()["id"]


def test_rate_limit_is_429_with_retry_after(redis_url):
    app = create_app(
        {
            "REDIS_URL": redis_url,
            "TESTING": True,
            "AUTH_ENV": {"API_KEYS": API_KEYS},
            "RATE_LIMIT": "3/minute",
        }
    )
    client = app.test_client()
    # A submission first: the stricter submit limit must not lift the default one from GETs.
    submit(client, "alice")
    codes = [client.get("/v1/jobs", headers=bearer("alice")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    response = client.get("/v1/jobs", headers=bearer("alice"))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["code"] == 429
    # Counters are per key: bob is not limited by alice's requests.
    assert client.get("/v1/jobs", headers=bearer("bob")).status_code == 200


def test_active_job_quota_is_429_stating_the_cap(redis_url):
    app = create_app(
        {
            "REDIS_URL": redis_url,
            "TESTING": True,
            "AUTH_ENV": {"API_KEYS": API_KEYS},
            "MAX_ACTIVE_JOBS": 2,
        }
    )
    client = app.test_client()
    first = submit(client, "alice")
    submit(client, "alice")
    over = client.post("/v1/jobs", json=GOOD_JOB, headers=bearer("alice"))
    assert over.status_code == 429
    assert "at most 2" in over.get_json()["message"]
    submit(client, "bob")  # quotas are per tenant
    assert client.delete(f"/v1/jobs/{first}", headers=bearer("alice")).status_code == 200
    submit(client, "alice")  # a canceled job frees its slot


BIG = edited(
    (
        "network.layers",
        [{"units": 4096, "activation": "relu"}] * 3 + [{"units": 1, "activation": "linear"}],
    ),
    ("training.epochs", 1_000_000),
    ("data", {"X": [[0, 1]] * 40, "y": [[1]] * 40}),
)


def test_compute_budget_is_422_with_estimate_and_limit(client, redis_conn):
    response = client.post("/v1/jobs", json=BIG, headers=bearer("alice"))
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert "the limit is" in errors["network.layers"][0]
    assert (
        "FLOPs" in errors["training.epochs"][0] and "the limit is" in errors["training.epochs"][0]
    )
    assert not redis_conn.keys("bp:job:*")


def test_dry_run_estimates_and_queues_nothing(client, redis_conn):
    response = client.post("/v1/jobs?dry_run=true", json=GOOD_JOB, headers=bearer("alice"))
    assert response.status_code == 200
    body = response.get_json()
    # 2 inputs -> 2 sigmoid -> 1 sigmoid: 2*2+2 + 2*1+1 = 9 parameters, 4 samples.
    assert body["estimate"] == {
        "parameters": 9,
        "flops_per_epoch": 6 * 4 * 9,
        "total_flops": 6 * 4 * 9 * 5,
        "weight_bytes": 72,
    }
    assert body["valid"] is True
    assert not redis_conn.keys("bp:job:*") and not redis_conn.keys("rq:*")


UNSAFE_CALLS = {("pickle", "loads"), ("pickle", "load"), ("yaml", "load"), ("marshal", "loads")}


def test_no_pickle_eval_or_unsafe_yaml_in_the_code():
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in ("eval", "exec"):
                    offenders.append(f"{path}:{node.lineno} {node.func.id}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", None)
                if (owner, node.func.attr) in UNSAFE_CALLS:
                    offenders.append(f"{path}:{node.lineno} {owner}.{node.func.attr}")
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                    offenders.append(f"{path}:{node.lineno} allow_pickle")
    assert offenders == []


def test_submissions_have_their_own_stricter_limit(redis_url):
    app = create_app(
        {
            "REDIS_URL": redis_url,
            "TESTING": True,
            "AUTH_ENV": {"API_KEYS": API_KEYS},
            "RATE_LIMIT_SUBMIT": "2/minute",
        }
    )
    client = app.test_client()
    codes = [
        client.post("/v1/jobs", json=GOOD_JOB, headers=bearer("alice")).status_code
        for _ in range(3)
    ]
    assert codes == [202, 202, 429]
    assert client.get("/v1/jobs", headers=bearer("alice")).status_code == 200


def gunicorn_bind(monkeypatch, **env) -> str:
    for name in ("API_KEYS", "API_KEYS_FILE", "BIND_HOST", "PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "service" / "gunicorn_conf.py"))["bind"]


def test_without_keys_gunicorn_binds_loopback_only(monkeypatch):
    assert gunicorn_bind(monkeypatch, BIND_HOST="0.0.0.0", PORT="9") == "127.0.0.1:9"
    with_keys = gunicorn_bind(monkeypatch, BIND_HOST="0.0.0.0", PORT="9", API_KEYS="a:b")
    assert with_keys == "0.0.0.0:9"


def test_keys_over_real_http(redis_url):
    with serve_api(redis_url, API_KEYS=API_KEYS) as base:
        assert requests.get(f"{base}/v1/jobs", timeout=10).status_code == 401
        response = requests.post(
            f"{base}/v1/jobs", json=GOOD_JOB, headers=bearer("bob"), timeout=10
        )
        assert response.status_code == 202
        job_id = response.json()["id"]
        assert (
            requests.get(
                f"{base}/v1/jobs/{job_id}", headers=bearer("alice"), timeout=10
            ).status_code
            == 404
        )
        assert (
            requests.get(f"{base}/v1/jobs/{job_id}", headers=bearer("bob"), timeout=10).status_code
            == 200
        )
