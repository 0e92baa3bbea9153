"""Tenancy, API keys, rate limits, quotas, compute budgets, and no unsafe deserialisation.

The Flask test client drives the real app against the real Redis of the session; models are
trained by the worker's own task code in this process.
"""

import ast
import hashlib
import runpy
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

import store
from service.auth import parse_keys
from tests.support.apps import ROOT, serve_api
from tests.support.auth import API_KEYS, KEYED_CONFIG, KEYS, bearer, keyed_app
from tests.support.jobs import GOOD_JOB, edited
from workers.tasks import train_job


@pytest.fixture
def app_config() -> dict:
    """The ``app`` and ``client`` fixtures here know the test keys (tests.support.auth)."""
    return KEYED_CONFIG


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
    app = keyed_app(redis_url, RATE_LIMIT="3/minute")
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
    app = keyed_app(redis_url, MAX_ACTIVE_JOBS=2)
    client = app.test_client()
    first = submit(client, "alice")
    submit(client, "alice")
    over = client.post("/v1/jobs", json=GOOD_JOB, headers=bearer("alice"))
    assert over.status_code == 429
    assert "at most 2" in over.get_json()["message"]
    submit(client, "bob")  # quotas are per tenant
    assert client.delete(f"/v1/jobs/{first}", headers=bearer("alice")).status_code == 200
    submit(client, "alice")  # a canceled job frees its slot


def test_slots_leaked_by_dead_requests_are_reclaimed(redis_url):
    """A request that died between reserving a slot and storing its job (a killed gunicorn
    worker, a Redis stall) leaves the slot taken; the next reservation at the cap frees it."""
    app = keyed_app(redis_url, MAX_ACTIVE_JOBS=2)
    client = app.test_client()
    conn = app.extensions["redis"]
    leaked = [store.new_id(), store.new_id()]
    for job_id in leaked:
        assert store.reserve_job_slot(conn, "alice", job_id, 2)
        conn.delete(store.reservation_key(job_id))  # its request is long gone
    job_id = submit(client, "alice")
    # A reservation whose request may still be storing its job is honoured.
    in_flight = store.new_id()
    assert store.reserve_job_slot(conn, "alice", in_flight, 2)
    assert client.post("/v1/jobs", json=GOOD_JOB, headers=bearer("alice")).status_code == 429
    # A job that ended without its slot being released (a worker died while tidying).
    store.update_job(conn, job_id, status=store.JobStatus.FINISHED)
    submit(client, "alice")
    assert conn.scard(store.tenant_active_key("alice")) == 2


def test_a_refused_request_releases_its_idempotency_key(redis_url):
    app = keyed_app(redis_url, MAX_ACTIVE_JOBS=1)
    client = app.test_client()
    first = submit(client, "alice")
    headers = {**bearer("alice"), "Idempotency-Key": "retry-me"}
    refused = client.post("/v1/jobs", json=GOOD_JOB, headers=headers)
    assert refused.status_code == 429
    assert client.delete(f"/v1/jobs/{first}", headers=bearer("alice")).status_code == 200
    retried = client.post("/v1/jobs", json=GOOD_JOB, headers=headers)
    assert retried.status_code == 202, retried.get_json()
    again = client.post("/v1/jobs", json=GOOD_JOB, headers=headers)
    assert again.status_code == 202 and again.get_json()["id"] == retried.get_json()["id"]


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
        # 8 bytes x (6 x 9 parameters + 4 buffers x 4 rows x 3 units + (4 + 4) rows x 3 columns)
        "memory_bytes": 8 * (6 * 9 + 4 * 4 * 3 + 8 * 3),
    }
    assert body["valid"] is True
    assert not redis_conn.keys("bp:job:*") and not redis_conn.keys("rq:*")


# Modules whose loading runs code from the data: never imported outside the tests.
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "shelve", "marshal", "jsonpickle"}
UNSAFE_YAML = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


def loader_name(node: ast.expr | None) -> str | None:
    """``SafeLoader`` of ``yaml.SafeLoader`` or ``SafeLoader``; None when not a plain name."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def unsafe_code(source: str, filename: str = "<code>") -> list[str]:
    """``"file:line what"`` for each eval/exec, pickle-like import, unsafe YAML load, or
    ``allow_pickle`` that is not False."""
    offenders = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    offenders.append(f"{where} import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            names = {alias.name for alias in node.names}
            if root in UNSAFE_MODULES or (root == "yaml" and names & (UNSAFE_YAML | {"load"})):
                offenders.append(f"{where} from {node.module} import {', '.join(sorted(names))}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("eval", "exec", "__import__"):
                offenders.append(f"{where} {node.func.id}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, attr = getattr(node.func.value, "id", None), node.func.attr
            if owner == "yaml" and attr in UNSAFE_YAML:
                offenders.append(f"{where} yaml.{attr}")
            elif owner == "yaml" and attr in ("load", "load_all"):
                keywords = {k.arg: k.value for k in node.keywords}
                loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
                if loader_name(loader) not in SAFE_LOADERS:
                    offenders.append(f"{where} yaml.{attr} without SafeLoader")
        if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                offenders.append(f"{where} allow_pickle")
    return offenders


def source_files() -> list[Path]:
    """The project's Python files, tracked or new, as git sees them: no .venv, no tests."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if not name.startswith("tests/")]


@pytest.mark.parametrize(
    "code",
    [
        "import pickle",
        "import pickle as p",
        "from pickle import loads",
        "from _pickle import loads",
        "import marshal",
        "import shelve",
        "eval('1')",
        "exec('x = 1')",
        "yaml.load(text)",
        "yaml.load(text, Loader=yaml.Loader)",
        "yaml.load(text, yaml.FullLoader)",
        "yaml.load_all(text)",
        "yaml.unsafe_load(text)",
        "yaml.full_load(text)",
        "from yaml import unsafe_load",
        "np.load(f, allow_pickle=True)",
        "np.load(f, allow_pickle=flag)",
    ],
)
def test_the_code_scan_finds_unsafe_code(code):
    assert unsafe_code(code) != []


@pytest.mark.parametrize(
    "code",
    [
        "yaml.safe_load(text)",
        "yaml.load(text, Loader=yaml.SafeLoader)",
        "yaml.load(text, yaml.CSafeLoader)",
        "np.load(f, allow_pickle=False)",
        "conn.eval(script, 1, key)",  # Redis EVAL runs Lua on the server, not Python here
        "import json",
    ],
)
def test_the_code_scan_passes_safe_code(code):
    assert unsafe_code(code) == []


def test_the_code_scan_covers_every_module_and_only_ours():
    names = {path.relative_to(ROOT).as_posix() for path in source_files()}
    assert {"store/jobs.py", "store/queue.py", "service/schemas.py", "backprop/trainer.py"} <= names
    assert not any(name.startswith((".venv/", "tests/")) for name in names)


def test_no_pickle_eval_or_unsafe_yaml_in_the_code():
    offenders = []
    for path in source_files():
        offenders += unsafe_code(path.read_text(), str(path.relative_to(ROOT)))
    assert offenders == []


def test_submissions_have_their_own_stricter_limit(redis_url):
    app = keyed_app(redis_url, RATE_LIMIT_SUBMIT="2/minute")
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
    # Set, so that the config does not set a metrics directory of its own in this process's
    # environment, which the servers later tests start would inherit and share.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", tempfile.gettempdir())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "service" / "gunicorn_conf.py"))["bind"]


def test_without_keys_gunicorn_binds_loopback_only(monkeypatch):
    assert gunicorn_bind(monkeypatch, BIND_HOST="0.0.0.0", PORT="9") == "127.0.0.1:9"
    with_keys = gunicorn_bind(monkeypatch, BIND_HOST="0.0.0.0", PORT="9", API_KEYS="a:b")
    assert with_keys == "0.0.0.0:9"


@pytest.mark.process
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


def test_memory_budget_names_batch_size(client):
    wide = edited(
        (
            "network.layers",
            [{"units": 4000, "activation": "relu"}, {"units": 1, "activation": "linear"}],
        ),
        ("training.batch_size", None),
        ("data", {"X": [[0, 1]] * 40_000, "y": [[1]] * 40_000}),
    )
    response = client.post("/v1/jobs?dry_run=true", json=wide, headers=bearer("alice"))
    assert response.status_code == 422
    assert "MiB of worker memory" in response.get_json()["errors"]["training.batch_size"][0]
    wide["training"]["batch_size"] = 64
    assert (
        client.post("/v1/jobs?dry_run=true", json=wide, headers=bearer("alice")).status_code == 200
    )


def test_key_guessing_is_rate_limited_per_address(redis_url):
    app = keyed_app(redis_url, RATE_LIMIT="3/minute")
    client = app.test_client()
    guesses = [
        client.get("/v1/jobs", headers={"Authorization": f"Bearer guess-{i}"}).status_code
        for i in range(4)
    ]
    assert guesses == [401, 401, 401, 429]
