"""``make bench``'s service line: the article's XOR job trained by the service, against the
article's own loop timed in the same run.

Starts the stack as ``make bench-serve`` does (bench.serve: an embedded Redis, one worker,
gunicorn), then, after a warm-up round, ``BENCH_XOR_ROUNDS`` (5) rounds, each timing the
article's loop (examples/xor_article.py) in this process and then the same network trained
through the service: ``POST /v1/jobs``, then ``GET /v1/jobs/{id}?wait=`` until it has ended.

- ``train_ratio``: the worker's training time (``started_at`` to ``ended_at``, as the job
  reports them, to the millisecond) over the article loop's time in the same round;
- ``overhead_ms``: the client's time from sending the POST to reading ``finished``, less that
  training time: validation, queueing, rq, loading the data, storing the model, the answers.

Each is the median over the rounds, printed with its min-max spread. The last line is
``bench-xor-service: train_ratio=<m> overhead_ms=<m>``.
"""

import os
import statistics
import time
from datetime import datetime

import numpy as np
import requests

from bench.serve import serving
from examples.xor_article import X, Y, article_loop, article_spec

ROUNDS = int(os.environ.get("BENCH_XOR_ROUNDS", "5"))
JOB = {**article_spec(), "data": {"X": X.tolist(), "y": Y.tolist()}}


def loop_seconds() -> float:
    start = time.perf_counter()
    article_loop()
    return time.perf_counter() - start


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def service_seconds(session: requests.Session, base: str) -> tuple[float, float]:
    """Train JOB through the service; ``(training seconds, POST-to-finished seconds)``."""
    start = time.perf_counter()
    answer = session.post(f"{base}/v1/jobs", json=JOB, timeout=30)
    answer.raise_for_status()
    url = f"{base}/v1/jobs/{answer.json()['id']}"
    while True:
        job = session.get(url, params={"wait": 30}, timeout=60).json()
        if job["status"] in ("finished", "failed", "canceled"):
            break
    end = time.perf_counter()
    if job["status"] != "finished":
        raise SystemExit(f"the XOR job ended {job['status']}: {job.get('error')}")
    training = (parse_time(job["ended_at"]) - parse_time(job["started_at"])).total_seconds()
    return training, end - start


def spread(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def main() -> None:
    with serving(LOG_LEVEL="WARNING") as base, requests.Session() as session:
        loop_seconds()
        service_seconds(session, base)  # warm-up: imports, caches, connections
        ratios, overheads = [], []
        for n in range(1, ROUNDS + 1):
            loop = loop_seconds()
            training, total = service_seconds(session, base)
            ratios.append(training / loop)
            overheads.append((total - training) * 1e3)
            print(
                f"round {n}: article loop {loop * 1e3:.1f} ms, worker training "
                f"{training * 1e3:.1f} ms, POST to finished {total * 1e3:.1f} ms"
            )
    print(
        f"train_ratio median {statistics.median(ratios):.2f} (spread {spread(ratios, 2)}), "
        f"overhead_ms median {statistics.median(overheads):.1f} (spread {spread(overheads, 1)}), "
        f"{ROUNDS} interleaved rounds; numpy {np.__version__}"
    )
    print(
        f"bench-xor-service: train_ratio={statistics.median(ratios):.2f} "
        f"overhead_ms={statistics.median(overheads):.1f}"
    )


if __name__ == "__main__":
    main()
