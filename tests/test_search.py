"""Names, tags, metadata and search (store.labels, store.search) against a real Redis: every
filter and sort returns exactly the expected ids over a few hundred jobs, the status indexes
follow every status change, a page's Redis command count does not grow with the tenant's jobs,
and the HTTP side (PATCH, bounds, query parameters) answers as documented.
"""

import random
from datetime import UTC, datetime

import numpy as np
import pytest

import store
from store import JobStatus, labels, search
from store.keys import search_key
from tests.support.auth import bearer, keyed_app
from tests.support.jobs import GOOD_JOB, edited

TAGS = ("red", "green", "blue", "gold")
NAMES = ("run-a", "run-b", "runner", "base", None)
DATASETS = ("d" * 32, "e" * 32)
SWEEPS = ("5" * 32, "6" * 32)
TTL = 60


def _job(conn, rng: random.Random, tenant: str, i: int) -> dict:
    """One job with random labels, taken through a random sequence of status changes."""
    job_id = store.new_id()
    name = rng.choice(NAMES)
    job = {
        "id": job_id,
        "tenant": tenant,
        "name": None if name is None else f"{name}-{i}",
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "dataset_id": rng.choice((None, *DATASETS)),
        "sweep_id": rng.choice((None, None, *SWEEPS)),
        "metrics": {},
    }
    store.create_job(
        conn,
        job_id,
        {"network": {}, "training": {}},
        {},
        3,
        max_runtime_seconds=60,
        tenant=tenant,
        dataset_id=job["dataset_id"],
        name=job["name"],
        tags=job["tags"],
        metadata={"i": i},
        sweep_id=job["sweep_id"],
    )
    job["created"] = conn.zscore(store.tenant_jobs_key(tenant), job_id)
    fate = rng.choice(("queued", "started", "requeued", "finished", "finished", "failed", "cancel"))
    if fate == "cancel":
        store.cancel_if_queued(conn, job_id, store.now_iso(), tenant)
    elif fate != "queued":
        store.start_attempt(conn, job_id)
    if fate == "requeued":  # as the reaper requeues a job whose worker died
        store.queue.requeue(conn, store.get_job(conn, job_id))
    elif fate == "finished":
        loss = round(rng.random(), 2)  # rounded: ties, broken by id
        job["metrics"] = {"final_loss": loss, "accuracy": round(rng.random(), 1)}
        if rng.random() < 0.7:
            job["metrics"]["val_accuracy"] = round(rng.random(), 1)
        meta = {
            "id": job_id,
            "job_id": job_id,
            "tenant": tenant,
            "final_loss": loss,
            "final_metrics": {k: v for k, v in job["metrics"].items() if k != "final_loss"},
        }
        store.save_model(conn, job_id, b"model", meta)
        store.finish_job(conn, job_id, TTL, status=JobStatus.FINISHED, model_id=job_id)
    elif fate == "failed":
        store.finish_job(conn, job_id, TTL, status=JobStatus.FAILED)
    job["status"] = store.get_job(conn, job_id)["status"]
    return job


def make_jobs(conn, n: int, seed: int = 7, start: int = 0) -> list[dict]:
    """``n`` jobs, most of them alice's, a few bob's."""
    rng = random.Random(seed)
    return [_job(conn, rng, "bob" if rng.random() < 0.15 else "alice", start + i) for i in range(n)]


def every_page(conn, tenant, query: search.Query, limit: int) -> list[str]:
    """The ids of every page, following next_cursor to the end."""
    ids, cursor = [], None
    for _ in range(1000):
        records, cursor = search.search(conn, tenant, query, limit, cursor)
        ids += [r["id"] for r in records]
        if cursor is None:
            return ids
    raise AssertionError("the cursor never ended")


def expected(jobs: list[dict], tenant, query: search.Query) -> list[str]:
    """What ``query`` should return, computed from what the jobs were made with."""

    def keep(job):
        return (
            (tenant is None or job["tenant"] == tenant)
            and (query.status is None or job["status"] == query.status)
            and set(query.tags) <= set(job["tags"])
            and (query.name is None or (job["name"] or "").startswith(query.name))
            and (query.name is None or job["name"] is not None)
            and (query.dataset_id is None or job["dataset_id"] == query.dataset_id)
            and (query.sweep_id is None or job["sweep_id"] == query.sweep_id)
            and (query.created_after is None or job["created"] > query.created_after)
            and (query.created_before is None or job["created"] < query.created_before)
        )

    field, descending = query.sort_field, query.descending
    if field == "created_at":
        kept = [(j["created"], j["id"]) for j in jobs if keep(j)]
    else:
        kept = [(j["metrics"][field], j["id"]) for j in jobs if keep(j) and field in j["metrics"]]
    return [job_id for _, job_id in sorted(kept, reverse=descending)]


@pytest.fixture
def jobs(redis_conn) -> list[dict]:
    return make_jobs(redis_conn, 300)


def queries(jobs: list[dict]) -> list[search.Query]:
    created = sorted(j["created"] for j in jobs)
    early, late = created[len(created) // 4], created[3 * len(created) // 4]
    return [
        search.Query(),
        search.Query(sort="created_at"),
        search.Query(status="queued"),
        search.Query(status="started"),
        search.Query(status="finished"),
        search.Query(status="failed"),
        search.Query(status="canceled"),
        search.Query(tags=("red",)),
        search.Query(tags=("red", "blue")),
        search.Query(tags=("red", "blue", "gold"), status="finished"),
        search.Query(name="run"),
        search.Query(name="run-"),
        search.Query(name="runner-1"),
        search.Query(name="nobody"),
        search.Query(name="base", status="queued"),
        search.Query(dataset_id=DATASETS[0]),
        search.Query(sweep_id=SWEEPS[1], status="finished"),
        search.Query(created_after=early),
        search.Query(created_before=late, sort="created_at"),
        search.Query(created_after=early, created_before=late, tags=("green",)),
        search.Query(sort="final_loss"),
        search.Query(sort="-final_loss"),
        search.Query(sort="-val_accuracy"),
        search.Query(sort="accuracy", tags=("gold",)),
        search.Query(sort="-final_loss", created_after=early, name="run"),
    ]


@pytest.mark.parametrize("limit", [7, 100])
def test_filters_and_sorts_return_exactly_the_expected_ids(redis_conn, jobs, limit):
    for tenant in ("alice", "bob", None):
        for query in queries(jobs):
            want = expected(jobs, tenant, query)
            assert every_page(redis_conn, tenant, query, limit) == want, (tenant, query)
    # The table exercises every status and sort, not just empty answers.
    assert {j["status"] for j in jobs} == set(JobStatus)
    assert len(expected(jobs, "alice", search.Query(tags=("red", "blue")))) > 10


def test_status_indexes_hold_each_job_under_its_status_only(redis_conn, jobs):
    for tenant in ("alice", None):
        for status in JobStatus:
            indexed = {
                m.decode() for m in redis_conn.zrange(search_key(tenant, "status", status), 0, -1)
            }
            want = {
                j["id"] for j in jobs if j["status"] == status and tenant in (None, j["tenant"])
            }
            assert indexed == want, (tenant, status)


def test_an_unknown_cursor_is_a_key_error(redis_conn, jobs):
    with pytest.raises(KeyError):
        search.search(redis_conn, "alice", search.Query(), 10, store.new_id())
    bobs = next(j["id"] for j in jobs if j["tenant"] == "bob")
    with pytest.raises(KeyError):
        search.search(redis_conn, "alice", search.Query(), 10, bobs)


def commands(conn, tenant, query: search.Query, limit: int, cursor=None) -> int:
    """Redis commands one page takes (INFO commandstats, reset before)."""
    conn.config_resetstat()
    search.search(conn, tenant, query, limit, cursor)
    stats = conn.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config"))


# Pages that fill from the first chunk of the walked index at 100 and at 400 jobs alike.
DENSE_QUERIES = [
    search.Query(),
    search.Query(status="queued"),
    search.Query(tags=("red",)),
    search.Query(name="run"),
    search.Query(sort="-final_loss"),
    search.Query(dataset_id=DATASETS[0]),
]
# Pages whose other filters match few of the walked jobs: they scan up to the budget.
SPARSE_QUERIES = [
    search.Query(tags=("red", "green", "blue"), status="finished"),
    search.Query(tags=("gold",), sort="final_loss", status="failed"),
    search.Query(name="nobody", status="queued"),
]


def test_a_pages_command_count_does_not_grow_with_the_tenants_jobs(redis_conn):
    limit = 10
    # At most SCAN_CHUNKS chunks, each limit + 1 HGETALLs, a ZMSCORE and two ZRANGEs, plus a
    # ZCOUNT per filter and the cursor's ZSCORE: far fewer than the tenant's jobs.
    bound = search.SCAN_CHUNKS * (limit + 1 + 3) + 6
    make_jobs(redis_conn, 100)
    small = [commands(redis_conn, "alice", q, limit) for q in DENSE_QUERIES]
    second = search.search(redis_conn, "alice", search.Query(), limit)[1]
    small_next = commands(redis_conn, "alice", search.Query(), limit, second)
    make_jobs(redis_conn, 300, seed=8, start=100)
    assert redis_conn.zcard(store.tenant_jobs_key("alice")) > 300
    large = [commands(redis_conn, "alice", q, limit) for q in DENSE_QUERIES]
    large_next = commands(redis_conn, "alice", search.Query(), limit, second)
    assert large == small
    assert large_next == small_next
    assert max(large) < 2 * limit
    sparse = [commands(redis_conn, "alice", q, limit) for q in SPARSE_QUERIES]
    assert max(sparse) <= bound < redis_conn.zcard(store.tenant_jobs_key("alice"))


def test_relabel_moves_the_job_in_the_name_and_tag_indexes(redis_conn):
    job_id = store.new_id()
    store.create_job(redis_conn, job_id, {}, {}, 3, tenant="alice", name="old", tags=["x"])
    assert search.relabel(redis_conn, job_id, {"name": "new", "tags": ["y", "z"]})
    ids = lambda **kw: every_page(redis_conn, "alice", search.Query(**kw), 10)  # noqa: E731
    assert ids(name="old") == [] and ids(tags=("x",)) == []
    assert ids(name="ne") == [job_id] and ids(tags=("y", "z")) == [job_id]
    assert search.relabel(redis_conn, job_id, {"name": None, "metadata": {"k": 1}})
    assert ids(name="ne") == []
    assert store.get_job(redis_conn, job_id)["metadata"] == {"k": 1}
    assert not search.relabel(redis_conn, store.new_id(), {"name": "x"})


def test_create_job_refuses_labels_out_of_bounds(redis_conn):
    with pytest.raises(ValueError, match="tags.0"):
        store.create_job(redis_conn, store.new_id(), {}, {}, 3, tags=["x" * 65])
    assert redis_conn.dbsize() == 0


def test_a_discarded_job_leaves_every_index(redis_conn):
    job_id = store.new_id()
    store.create_job(
        redis_conn, job_id, {}, {}, 3, tenant="alice", name="n", tags=["t"], sweep_id="5" * 32
    )
    store.discard_job(redis_conn, job_id, "alice")
    assert redis_conn.keys("bp:search:*") == []


# -- HTTP ---------------------------------------------------------------------------------


def test_a_job_shows_its_labels_and_patch_edits_them(client):
    body = {**GOOD_JOB, "name": "first", "tags": ["a", "b", "a"], "metadata": {"lr": 0.1}}
    created = client.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.get_json()
    job = created.get_json()
    assert (job["name"], job["tags"], job["metadata"]) == ("first", ["a", "b"], {"lr": 0.1})
    url = f"/v1/jobs/{job['id']}"
    patched = client.patch(url, json={"name": "second", "tags": ["c"]})
    assert patched.status_code == 200
    assert (patched.get_json()["name"], patched.get_json()["tags"]) == ("second", ["c"])
    assert patched.get_json()["metadata"] == {"lr": 0.1}
    listed = client.get("/v1/jobs?tag=c&name=sec").get_json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert client.get("/v1/jobs?tag=a").get_json()["jobs"] == []


def test_the_spec_endpoint_returns_the_job_as_submitted(client):
    body = {**GOOD_JOB, "name": "spec", "tags": ["t"], "metadata": {"k": "v"}}
    body["initial_weights"] = [
        {"W": [[0.1, 0.2], [0.3, 0.4]], "b": [0.0, 0.0]},
        {"W": [[0.5], [0.6]], "b": [0.0]},
    ]
    job = client.post("/v1/jobs", json=body).get_json()
    spec = client.get(f"/v1/jobs/{job['id']}/spec").get_json()
    assert spec["network"]["layers"][0]["units"] == 2
    assert spec["training"]["epochs"] == GOOD_JOB["training"]["epochs"]
    assert (spec["name"], spec["tags"], spec["metadata"]) == ("spec", ["t"], {"k": "v"})
    assert spec["has_initial_weights"] is True and "initial_weights" not in spec
    assert "data" not in spec


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (("name", "x" * (labels.NAME_MAX_LENGTH + 1)), "name"),
        (("name", "a\nb"), "name"),
        (("tags", ["ok", "y" * (labels.TAG_MAX_LENGTH + 1)]), "tags.1"),
        (("tags", [f"t{i}" for i in range(labels.MAX_TAGS + 1)]), "tags"),
        (("metadata", {"nested": {"no": 1}}), "metadata.nested"),
        (("metadata", {f"k{i}": i for i in range(labels.METADATA_MAX_KEYS + 1)}), "metadata"),
        (("metadata", {"big": "z" * (labels.METADATA_VALUE_MAX_LENGTH + 1)}), "metadata.big"),
    ],
)
def test_labels_out_of_bounds_are_422_naming_the_field(client, edit, field):
    response = client.post("/v1/jobs", json=edited(edit))
    assert response.status_code == 422
    assert field in response.get_json()["errors"], response.get_json()
    job = client.post("/v1/jobs", json=GOOD_JOB).get_json()
    patched = client.patch(f"/v1/jobs/{job['id']}", json={edit[0]: edit[1]})
    assert patched.status_code == 422
    assert field in patched.get_json()["errors"], patched.get_json()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("sort=loss", "sort"),
        ("sort=-weights", "sort"),
        ("created_after=yesterday", "created_after"),
        ("dataset_id=nope", "dataset_id"),
        (f"cursor={'a' * 32}", "cursor"),
    ],
)
def test_bad_search_parameters_are_422_naming_the_field(client, query, field):
    response = client.get(f"/v1/jobs?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["errors"], response.get_json()


def test_http_filters_and_sort(client, redis_conn):
    ids = {}
    for name, tags in (("alpha", ["x"]), ("alpine", ["x", "y"]), ("beta", ["y"])):
        ids[name] = client.post(
            "/v1/jobs", json={**GOOD_JOB, "name": name, "tags": tags}
        ).get_json()["id"]
    for loss, name in ((0.3, "alpha"), (0.1, "alpine")):
        meta = {"id": ids[name], "job_id": ids[name], "tenant": "public", "final_loss": loss}
        store.save_model(redis_conn, ids[name], b"m", {**meta, "final_metrics": {"r2": -loss}})
        store.start_attempt(redis_conn, ids[name])
        store.finish_job(redis_conn, ids[name], TTL, status="finished", model_id=ids[name])

    def listed(query):
        response = client.get(f"/v1/jobs?{query}")
        assert response.status_code == 200, response.get_json()
        return [j["id"] for j in response.get_json()["jobs"]]

    assert listed("name=alp") == [ids["alpine"], ids["alpha"]]
    assert listed("name=alp&sort=created_at") == [ids["alpha"], ids["alpine"]]
    assert listed("tag=x&tag=y") == [ids["alpine"]]
    assert listed("status=queued") == [ids["beta"]]
    assert listed("sort=final_loss") == [ids["alpine"], ids["alpha"]]
    assert listed("sort=-r2") == [ids["alpine"], ids["alpha"]]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert listed(f"created_before={now}&sort=created_at") == [
        ids[n] for n in ("alpha", "alpine", "beta")
    ]
    assert listed(f"created_after={now}") == []
    model = client.get(f"/v1/models/{ids['alpine']}").get_json()
    assert (model["name"], model["tags"]) == ("alpine", ["x", "y"])
    client.patch(f"/v1/jobs/{ids['alpine']}", json={"name": "renamed"})
    assert client.get(f"/v1/models/{ids['alpine']}").get_json()["name"] == "renamed"


def test_patch_and_spec_are_404_for_another_tenant(redis_url):
    app = keyed_app(redis_url)
    try:
        client = app.test_client()
        job = client.post("/v1/jobs", json=GOOD_JOB, headers=bearer("alice")).get_json()
        url = f"/v1/jobs/{job['id']}"
        assert client.patch(url, json={"name": "x"}, headers=bearer("bob")).status_code == 404
        assert client.get(f"{url}/spec", headers=bearer("bob")).status_code == 404
        assert client.patch(url, json={"name": "x"}, headers=bearer("alice")).status_code == 200
        # A tenant's search sees its own jobs only; an admin's sees everyone's.
        assert client.get("/v1/jobs?name=x", headers=bearer("bob")).get_json()["jobs"] == []
        admin = client.get("/v1/jobs?name=x", headers=bearer("admin")).get_json()["jobs"]
        assert [j["id"] for j in admin] == [job["id"]]
    finally:
        app.extensions["redis"].close()


def test_an_empty_patch_changes_nothing(client):
    job = client.post("/v1/jobs", json={**GOOD_JOB, "name": "kept", "tags": ["t"]}).get_json()
    response = client.patch(f"/v1/jobs/{job['id']}", json={})
    assert response.status_code == 200
    assert (response.get_json()["name"], response.get_json()["tags"]) == ("kept", ["t"])


def test_arrays_are_not_needed_to_index(redis_conn):
    """create_job indexes a dataset-backed job (no inline arrays) like any other."""
    job_id = store.new_id()
    store.create_job(redis_conn, job_id, {}, {"X_val": np.zeros((1, 1))}, 3, dataset_id="d" * 32)
    found = every_page(redis_conn, "public", search.Query(dataset_id="d" * 32), 5)
    assert found == [job_id]
