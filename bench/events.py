"""``make bench-events``: 100 clients following one training job as Server-Sent Events.

Starts the stack as ``make bench-serve`` does (bench.serve: an embedded Redis, one worker,
gunicorn with ``WEB_CONCURRENCY`` processes), trains a small model to predict with, then starts
a long job and alternates, ``BENCH_REPEATS`` times: single-row predictions under wrk (one
connection) with no stream open, then the same with ``BENCH_STREAMS`` clients following the
job. Between rounds the clients hang up; each reconnects with its Last-Event-ID. At the end the
job is canceled with the clients connected, and a client has completed when its stream ended
with the final status and the rows it received, over all its connections, are exactly the
job's stored history. A client answered 503 (its server process was at EVENTS_MAX_STREAMS,
still holding followers that hung up a moment before, until its next write to them) comes back
after Retry-After, as it is told to; those retries are counted and printed.

- lag: from the worker's flush (``flushed_at`` of a progress event, the worker's clock, the
  same machine's) to the event reaching the client, over every progress event of every client;
- ``predict_p50_ratio``: the median p50 of the rounds with the streams open over the median p50
  of those without.

The last line is
``bench-events: streams=<n> completed=<n> p99_lag_ms=<x> predict_p50_ratio=<x>``.
"""

import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
from httpx_sse import aconnect_sse

from bench.serve import DURATION, REPEATS, warm_predict_stack, wrk

STREAMS = int(os.environ.get("BENCH_STREAMS", "100"))
FINAL = ("finished", "failed", "canceled")
# Long enough to outlast the rounds (it is canceled at the end), slow enough per epoch that a
# flush carries tens of rows, not thousands.
_rng = np.random.default_rng(0)
_X = _rng.standard_normal((2000, 8))
FOLLOWED_JOB = {
    "network": {
        "layers": [
            {"units": 64, "activation": "tanh"},
            {"units": 32, "activation": "relu"},
            {"units": 3, "activation": "softmax"},
        ],
        "seed": 0,
    },
    "training": {
        "loss": "categorical_crossentropy",
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "epochs": 1_000_000,
        "batch_size": 32,
        "validation": {"fraction": 0.1},
    },
    "data": {
        "X": _X.round(4).tolist(),
        "y": np.eye(3)[(_X[:, 0] > 0).astype(int) + (_X[:, 1] > 1)].tolist(),
    },
}


class Follower:
    """One SSE client: the rows it has, where it is (its Last-Event-ID), its lags."""

    def __init__(self):
        self.rows: dict[str, list] = {}
        self.last_id = 0
        self.lags: list[float] = []
        self.final: str | None = None
        self.failures: list[str] = []  # connections cut or refused otherwise: not completed
        self.retries = 0  # 503s, each followed after its Retry-After, as a client is told to
        self.live = asyncio.Event()  # caught up since connecting (or failed): progress arrived

    async def follow(self, http: httpx.AsyncClient, job_id: str, hang_up: asyncio.Event):
        """One connection: from ``last_id`` until the job ends or ``hang_up`` is set."""
        self.live.clear()
        try:
            while True:
                try:
                    return await self._follow(http, job_id, hang_up)
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code != 503:
                        raise
                    # The server still holds followers that hung up a moment ago, until its
                    # next write to them fails; it says when to come back.
                    self.retries += 1
                    await asyncio.sleep(int(exc.response.headers["Retry-After"]))
        except httpx.HTTPError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.live.set()

    async def _follow(self, http: httpx.AsyncClient, job_id: str, hang_up: asyncio.Event):
        headers = {"Last-Event-ID": str(self.last_id)}
        url = f"/v1/jobs/{job_id}/events"
        async with aconnect_sse(http, "GET", url, headers=headers) as source:
            source.response.raise_for_status()
            async for sse in source.aiter_sse():
                arrived = time.time()
                data = json.loads(sse.data)
                self.last_id = int(sse.id)
                if sse.event == "history":
                    for column, values in data.items():
                        self.rows.setdefault(column, []).extend(values)
                elif sse.event == "progress":
                    if data["flushed_at"] is not None:
                        self.lags.append(arrived - data["flushed_at"])
                    self.live.set()
                elif sse.event == "status" and data["status"] in FINAL:
                    self.final = data["status"]
                    return
                if hang_up.is_set():
                    return


async def predict_p50(predict: str, script: Path) -> float:
    """wrk's p50 (ms) of single-row predictions, one connection, run off the event loop."""
    return (await asyncio.to_thread(wrk, predict, "1", script))["p50_ms"]


async def stored_history(http: httpx.AsyncClient, job_id: str) -> dict:
    """The job's whole history, page by page."""
    out: dict[str, list] = {}
    while True:
        params = {"offset": len(out.get("epoch", []))}
        page = (await http.get(f"/v1/jobs/{job_id}/history", params=params)).json()
        for column, values in page.items():
            out.setdefault(column, []).extend(values)
        if not page["epoch"]:
            return out


async def run(base: str, predict: str, script: Path) -> str:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    timeout = httpx.Timeout(10, read=60)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=timeout, trust_env=False
    ) as http:
        job_id = (await http.post("/v1/jobs", json=FOLLOWED_JOB)).json()["id"]
        followers = [Follower() for _ in range(STREAMS)]
        without, with_streams = [], []
        for _ in range(REPEATS):
            without.append(await predict_p50(predict, script))
            hang_up = asyncio.Event()
            tasks = [asyncio.create_task(f.follow(http, job_id, hang_up)) for f in followers]
            await asyncio.wait_for(asyncio.gather(*(f.live.wait() for f in followers)), 60)
            with_streams.append(await predict_p50(predict, script))
            hang_up.set()
            await asyncio.gather(*tasks)
        # The end, with every client connected: each must see it, with all the rows.
        hang_up = asyncio.Event()
        tasks = [asyncio.create_task(f.follow(http, job_id, hang_up)) for f in followers]
        await asyncio.wait_for(asyncio.gather(*(f.live.wait() for f in followers)), 60)
        await http.delete(f"/v1/jobs/{job_id}")
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        history = await stored_history(http, job_id)

    completed = sum(f.final is not None and not f.failures and f.rows == history for f in followers)
    failures = [failure for f in followers for failure in f.failures]
    if failures:
        print(f"{len(failures)} connections failed, e.g. {failures[0]}")
    retries = sum(f.retries for f in followers)
    if retries:
        print(f"{retries} connections were answered 503 and retried after Retry-After")
    unfinished = sum(f.final is None for f in followers)
    differ = sum(f.final is not None and f.rows != history for f in followers)
    if unfinished or differ:
        print(f"{unfinished} streams never saw the end; {differ} saw it with other rows")
    lags = [lag for f in followers for lag in f.lags]
    p99_lag_ms = float(np.percentile(lags, 99)) * 1000
    ratio = statistics.median(with_streams) / statistics.median(without)
    print(f"followed job: {len(history['epoch'])} epochs; {len(lags)} progress events timed")
    print(
        f"lag ms: p50 {np.percentile(lags, 50) * 1000:.1f}, p99 {p99_lag_ms:.1f}, max "
        f"{max(lags) * 1000:.1f}"
    )
    print("predict p50 ms without streams:", without)
    print(f"predict p50 ms with {STREAMS} streams:", with_streams)
    print(f"gunicorn workers={os.environ.get('WEB_CONCURRENCY', '2')}, wrk {DURATION} per round")
    return (
        f"bench-events: streams={STREAMS} completed={completed} p99_lag_ms={p99_lag_ms:.1f} "
        f"predict_p50_ratio={ratio:.2f}"
    )


def main() -> None:
    with warm_predict_stack("bench-events") as (base, predict, script, _api_pid):
        line = asyncio.run(run(base, predict, script))
    print(line)


if __name__ == "__main__":
    main()
