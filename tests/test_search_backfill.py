"""Jobs stored before the search indexes (an older release) are listed again after an upgrade:
a worker's start indexes them once (store.migrations, search.reindex), with the filters and
sorts of jobs indexed as they were made, once per index format, by one process at a time, and
without indexing a job from a stale read.
"""

import random
import threading
import time

import pytest

import store
from bench import reaper_pass
from devtools.processes import stop_all
from store import JobStatus, migrations, search
from store.keys import (
    JOBS_INDEX,
    PREFIX,
    SEARCH_INDEX_VERSION,
    migration_lock_key,
    search_key,
)
from tests.support.apps import STOP_TIMEOUT
from tests.support.jobs import GOOD_JOB

TTL = 60
TAGS = ("red", "green", "blue", "vért-🍀")
DATASET, SWEEP = "d" * 32, "5" * 32
LISTED_AGAIN_DEADLINE = 30  # seconds a new worker has to index a few jobs (not a timing check)


def search_keys(tenants, tags, metrics) -> list[str]:
    """Every index key ``store.search`` keeps for jobs with these tenants, tags and metrics:
    what a release before the indexes did not have."""
    keys = []
    for scope in (*tenants, None):
        keys += [search_key(scope, "status", str(status)) for status in JobStatus]
        keys += [search_key(scope, "tag", tag) for tag in tags]
        keys += [search_key(scope, "metric", name) for name in metrics]
        keys += [search_key(scope, "dataset", DATASET), search_key(scope, "sweep", SWEEP)]
        keys.append(search_key(scope, "name"))
    return keys


def as_an_old_release_left_them(conn, tenants, tags, metrics) -> None:
    """Delete the search indexes and the backfill's marker: the jobs are as an older release
    stored them (records and the created indexes only)."""
    conn.delete(*search_keys(tenants, tags, metrics), SEARCH_INDEX_VERSION)
    assert conn.keys(f"{PREFIX}:search:*") == []


def dump(conn) -> dict:
    """Every search index with its members and scores."""
    return {
        key.decode(): conn.zrange(key, 0, -1, withscores=True)
        for key in sorted(conn.keys(f"{PREFIX}:search:*"))
    }


# -- through the API and a real worker --------------------------------------------------------

QUERIES = (
    "",
    "status=finished",
    "status=canceled",
    "tag=red",
    "tag=red&tag=blue",
    "name=al",
    "sort=final_loss",
    "sort=-final_loss&tag=blue",
    "sort=created_at",
)


def test_old_jobs_are_listed_again_after_a_worker_starts(api, redis_conn, start_worker):
    worker = start_worker()
    made = {}
    for name, tags, lr in (("alpha", ["red"], 0.1), ("alpine", ["red", "blue"], 0.5)):
        job = {**GOOD_JOB, "name": name, "tags": tags}
        optimizer = {"name": "sgd", "learning_rate": lr}
        job["training"] = {**GOOD_JOB["training"], "optimizer": optimizer}
        made[name] = api.submit(job)
        assert api.wait_until_done(made[name])["status"] == "finished"
    stop_all([worker], STOP_TIMEOUT)
    made["beta"] = api.submit({**GOOD_JOB, "name": "beta", "tags": ["blue"]})
    canceled = api.session.delete(f"{api.base_url}/v1/jobs/{made['beta']}", timeout=10)
    assert canceled.json()["status"] == "canceled", canceled.text

    def listings() -> dict[str, list[str]]:
        answers = {q: api.get(f"/v1/jobs?{q}") for q in QUERIES}
        assert all(r.status_code == 200 for r in answers.values()), answers
        return {q: [j["id"] for j in r.json()["jobs"]] for q, r in answers.items()}

    indexed = listings()
    assert indexed["status=finished"] == [made["alpine"], made["alpha"]]
    assert indexed["tag=red&tag=blue"] == [made["alpine"]]
    assert indexed["status=canceled"] == [made["beta"]]
    assert len(indexed["sort=final_loss"]) == 2
    metrics = api.get(f"/v1/models/{made['alpha']}").json()["final_metrics"]

    as_an_old_release_left_them(redis_conn, ["public"], TAGS, ["final_loss", *metrics])
    old = listings()
    # Listed newest first (the created index is older than the search indexes), but every
    # filter and sort misses them: what users saw after upgrading.
    assert old[""] == indexed[""] and old["sort=created_at"] == indexed["sort=created_at"]
    assert all(old[q] == [] for q in QUERIES if "status" in q or "tag" in q or "name" in q)
    assert old["sort=final_loss"] == []

    start_worker()  # the upgraded release's first start
    deadline = time.monotonic() + LISTED_AGAIN_DEADLINE
    while (now := listings()) != indexed and time.monotonic() < deadline:
        time.sleep(0.1)
    assert now == indexed
    assert int(redis_conn.get(SEARCH_INDEX_VERSION)) == search.INDEX_FORMAT


# -- the backfill against a real Redis ------------------------------------------------------


def make_jobs(conn, n: int, seed: int = 3) -> list[str]:
    """``n`` jobs of two tenants, with labels, taken through the status changes a job can
    have: the indexes are exactly what the live code keeps."""
    rng = random.Random(seed)
    ids = []
    for i in range(n):
        job_id, tenant = store.new_id(), rng.choice(("alice", "bob"))
        store.create_job(
            conn,
            job_id,
            {},
            {},
            3,
            tenant=tenant,
            dataset_id=rng.choice((None, DATASET)),
            name=rng.choice((None, f"run-{i}", f"ré-{i}-😀")),
            tags=rng.sample(TAGS, rng.randint(0, 2)),
            sweep_id=rng.choice((None, SWEEP)),
        )
        fate = rng.choice(("queued", "started", "requeued", "finished", "failed", "canceled"))
        if fate == "canceled":
            store.cancel_if_queued(conn, job_id, store.now_iso(), tenant)
        elif fate != "queued":
            store.start_attempt(conn, job_id)
        if fate == "requeued":
            store.mark_queued(conn, job_id)
        elif fate == "finished":
            loss = round(rng.random(), 2)
            metrics = {"accuracy": round(rng.random(), 1)}
            meta = {"id": job_id, "tenant": tenant, "final_loss": loss, "final_metrics": metrics}
            store.save_model(conn, job_id, b"model", meta)
            store.finish_job(conn, job_id, TTL, status=JobStatus.FINISHED, model_id=job_id)
        elif fate == "failed":
            store.finish_job(conn, job_id, TTL, status=JobStatus.FAILED)
        if rng.random() < 0.2:
            search.relabel(conn, job_id, {"name": f"renamed-{i}", "tags": ["green"]})
        ids.append(job_id)
    return ids


METRICS = ("final_loss", "accuracy")


def test_the_backfill_rebuilds_the_indexes_the_live_code_keeps(redis_conn):
    ids = make_jobs(redis_conn, 120)
    live = dump(redis_conn)
    assert {store.get_job(redis_conn, i)["status"] for i in ids} == set(JobStatus)
    as_an_old_release_left_them(redis_conn, ["alice", "bob"], TAGS, METRICS)

    assert migrations.backfill_search(redis_conn, batch=50) == len(ids)
    assert dump(redis_conn) == live
    assert int(redis_conn.get(SEARCH_INDEX_VERSION)) == search.INDEX_FORMAT
    for tag in TAGS:
        listed, _ = search.search(redis_conn, "alice", search.Query(tags=(tag,)), 100)
        assert listed and all(tag in r["tags"] for r in listed), tag


def test_a_second_start_does_nothing_until_the_format_changes(redis_conn):
    ids = make_jobs(redis_conn, 20)
    live = dump(redis_conn)
    assert migrations.backfill_search(redis_conn) == len(ids)  # a fresh deployment's first
    as_an_old_release_left_them(redis_conn, ["alice", "bob"], TAGS, METRICS)
    redis_conn.set(SEARCH_INDEX_VERSION, search.INDEX_FORMAT)

    assert migrations.backfill_search(redis_conn) is None
    assert dump(redis_conn) == {}  # the marker says done: nothing was read or written

    redis_conn.set(SEARCH_INDEX_VERSION, search.INDEX_FORMAT - 1)  # indexed in an older format
    assert migrations.backfill_search(redis_conn) == len(ids)
    assert dump(redis_conn) == live


def test_concurrent_starts_run_it_once(redis_conn, redis_url):
    ids = make_jobs(redis_conn, 600)
    live = dump(redis_conn)
    as_an_old_release_left_them(redis_conn, ["alice", "bob"], TAGS, METRICS)
    starts = 4
    barrier, results = threading.Barrier(starts), []

    def start() -> None:
        conn = store.connect(redis_url)
        try:
            barrier.wait()
            results.append(migrations.backfill_search(conn, batch=20))
        finally:
            conn.close()

    threads = [threading.Thread(target=start) for _ in range(starts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=str) == [len(ids)] + [None] * (starts - 1)
    assert dump(redis_conn) == live
    assert redis_conn.get(migration_lock_key(SEARCH_INDEX_VERSION)) is None


def test_a_held_lock_makes_a_start_go_on_without_it(redis_conn):
    make_jobs(redis_conn, 5)
    as_an_old_release_left_them(redis_conn, ["alice", "bob"], TAGS, METRICS)
    lock = migration_lock_key(SEARCH_INDEX_VERSION)
    redis_conn.set(lock, "another process", px=migrations.LOCK_MS)
    assert migrations.backfill_search(redis_conn) is None
    assert dump(redis_conn) == {} and redis_conn.get(SEARCH_INDEX_VERSION) is None
    assert redis_conn.get(lock) == b"another process"  # not released by a process without it
    redis_conn.delete(lock)  # its holder died: the lock expires, and the next start runs it
    assert migrations.backfill_search(redis_conn) == 5


def test_a_lock_taken_over_stops_the_run_unfinished(redis_conn):
    make_jobs(redis_conn, 30)
    as_an_old_release_left_them(redis_conn, ["alice", "bob"], TAGS, METRICS)
    lock = migration_lock_key(SEARCH_INDEX_VERSION)

    def stalled(renew):  # as if this process had stalled past LOCK_MS and another took over
        redis_conn.set(lock, "another process")
        renew()

    with pytest.raises(migrations.LockLost):
        migrations.run_once(redis_conn, SEARCH_INDEX_VERSION, search.INDEX_FORMAT, stalled)
    assert redis_conn.get(SEARCH_INDEX_VERSION) is None
    assert redis_conn.get(lock) == b"another process"


def test_jobs_changed_or_deleted_after_being_read_are_not_indexed_from_the_stale_read(
    redis_conn,
):
    ids = []
    for tenant in ("alice", "bob", "carol"):
        job_id = store.new_id()
        store.create_job(redis_conn, job_id, {}, {}, 3, tenant=tenant, name="n", tags=["red"])
        ids.append(job_id)
    as_an_old_release_left_them(redis_conn, ["alice", "bob", "carol"], TAGS, METRICS)
    entries = redis_conn.zrange(JOBS_INDEX, 0, -1, withscores=True)
    gone = (store.new_id(), 1.0)  # listed by ZSCAN, deleted before its record was read
    plans = search.plan_reindex(redis_conn, [*entries, gone], JobStatus)
    assert len(plans) == len(entries)
    started, deleted, kept = ids
    store.start_attempt(redis_conn, started)  # moves it to "started" as the new release does
    store.discard_job(redis_conn, deleted, "bob")

    done, changed = search.apply_reindex(redis_conn, plans)
    assert done == 1
    assert {job_id for job_id, _ in changed} == {started, deleted}
    queued = lambda t: redis_conn.zrange(search_key(t, "status", "queued"), 0, -1)  # noqa: E731
    assert queued("alice") == [] and queued("bob") == []  # not from their stale reads
    assert queued("carol") == [kept.encode()]

    done, changed = search.reindex(redis_conn, changed, JobStatus)  # read again
    assert (done, changed) == (1, [])
    assert redis_conn.zrange(search_key("alice", "status", "started"), 0, -1) == [started.encode()]
    assert redis_conn.zrange(search_key("alice", "tag", "red"), 0, -1) == [started.encode()]
    assert redis_conn.keys(f"{PREFIX}:search:tenant:bob:*") == []  # deleted: skipped


def test_a_job_stored_before_tenants_is_the_public_ones(redis_conn):
    job_id = store.new_id()
    store.create_job(redis_conn, job_id, {}, {}, 3, name="old")
    redis_conn.hdel(store.job_key(job_id), "tenant", "name", "tags", "sweep_id", "metadata")
    redis_conn.delete(store.tenant_jobs_key("public"))
    as_an_old_release_left_them(redis_conn, ["public"], TAGS, METRICS)

    assert migrations.backfill_search(redis_conn) == 1
    listed, _ = search.search(redis_conn, "public", search.Query(status="queued"), 10)
    assert [r["id"] for r in listed] == [job_id]


def test_round_trips_grow_with_batches_not_jobs(redis_url, redis_conn):
    """A few round trips per batch of jobs, none per job (counted on the client's socket)."""
    n, batch = 400, 100
    make_jobs(redis_conn, n)
    as_an_old_release_left_them(redis_conn, ["alice", "bob"], TAGS, METRICS)
    counting = reaper_pass.counting_client(redis_url)
    try:
        before = reaper_pass.CountingConnection.sent
        assert migrations.backfill_search(counting, batch=batch) == n
        trips = reaper_pass.CountingConnection.sent - before
    finally:
        counting.close()
    # Per batch: ZSCAN, the records, the models' metrics, SCRIPT EXISTS, the scripts, the
    # lock's renewal; then the marker twice, the lock, the marker's write, the release.
    batches = 2 * n // batch  # ZSCAN's COUNT is a hint (~100 hash buckets, not members)
    assert trips <= 6 * batches + 5 < n / 5, trips


def test_a_job_stored_before_tenants_can_be_relabeled_once_indexed(client, redis_conn):
    job_id = client.post("/v1/jobs", json={**GOOD_JOB, "name": "old"}).get_json()["id"]
    redis_conn.hdel(store.job_key(job_id), "tenant")  # as a release before tenants stored it
    as_an_old_release_left_them(redis_conn, ["public"], TAGS, METRICS)
    assert migrations.backfill_search(redis_conn) == 1
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200  # the public tenant's

    patched = client.patch(f"/v1/jobs/{job_id}", json={"name": "new", "tags": ["red"]})
    assert patched.status_code == 200, patched.get_json()
    assert (patched.get_json()["name"], patched.get_json()["tags"]) == ("new", ["red"])
    listed = client.get("/v1/jobs?name=ne&tag=red").get_json()["jobs"]
    assert [j["id"] for j in listed] == [job_id]
    assert client.get("/v1/jobs?name=old").get_json()["jobs"] == []
