"""How long a worker's start takes to index jobs stored before the search indexes
(``store.migrations.backfill_search``): ``python -m bench.search_backfill``.

An embedded Redis gets JOBS jobs of two tenants with names and tags, a third of them finished
with a model; then, ROUNDS times, the search indexes and the marker are deleted (the jobs as an
older release left them) and the backfill is timed, with its round trips. The last line is
``bench-search-backfill: jobs=<n> seconds=<median> min=<x> max=<x> round_trips=<n>
second_start_ms=<x>``.
"""

import random
import statistics
import tempfile
import time
from pathlib import Path

import redis

import store
from bench import reaper_pass
from devtools import embedded_redis
from store import JobStatus, migrations
from store.keys import PREFIX, SEARCH_INDEX_VERSION

JOBS = 10_000
ROUNDS = 3
TTL = 60


def add_jobs(conn: redis.Redis, n: int) -> None:
    """``n`` jobs through the store's own functions, as the API and workers make them."""
    rng = random.Random(1)
    for i in range(n):
        job_id, tenant = store.new_id(), rng.choice(("alice", "bob"))
        tags = rng.sample(("red", "green", "blue"), rng.randint(0, 2))
        store.create_job(conn, job_id, {}, {}, 3, tenant=tenant, name=f"run-{i}", tags=tags)
        if i % 3 == 0:
            meta = {"id": job_id, "final_loss": rng.random(), "final_metrics": {"r2": 0.5}}
            store.save_model(conn, job_id, b"model", meta)
            store.start_attempt(conn, job_id, tenant)
            store.finish_job(
                conn, job_id, TTL, owner=tenant, status=JobStatus.FINISHED, model_id=job_id
            )


def drop_indexes(conn: redis.Redis) -> None:
    """The jobs as a release before the search indexes left them."""
    keys = list(conn.scan_iter(match=f"{PREFIX}:search:*", count=1000))
    if keys:
        conn.delete(*keys)
    conn.delete(SEARCH_INDEX_VERSION)


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        args = ("--save", "", "--appendonly", "no")
        with embedded_redis.running(Path(data_dir), args) as url:
            conn = reaper_pass.counting_client(url)
            add_jobs(conn, JOBS)
            seconds, trips = [], 0
            for _ in range(ROUNDS):
                drop_indexes(conn)
                before = reaper_pass.CountingConnection.sent
                t0 = time.perf_counter()
                indexed = migrations.backfill_search(conn)
                seconds.append(time.perf_counter() - t0)
                trips = reaper_pass.CountingConnection.sent - before
                assert indexed == JOBS, indexed
            t0 = time.perf_counter()
            assert migrations.backfill_search(conn) is None
            second_ms = (time.perf_counter() - t0) * 1000
            conn.close()
    print(
        f"bench-search-backfill: jobs={JOBS} seconds={statistics.median(seconds):.2f} "
        f"min={min(seconds):.2f} max={max(seconds):.2f} round_trips={trips} "
        f"second_start_ms={second_ms:.2f}"
    )


if __name__ == "__main__":
    main()
