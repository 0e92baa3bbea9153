"""``make bench-scale``: many small jobs through 1 and 2 workers, against the engine alone.

The stack is the one ``make run`` starts (scripts/run.py: the embedded Redis, gunicorn), with
no workers of its own; the workers are separate ``python -m workers`` processes sharing only
Redis with it, as on separate machines. Default settings, except the two limits that would
refuse a burst of submissions: ``MAX_ACTIVE_JOBS`` and ``RATE_LIMIT_SUBMIT`` (``RAISED``).

1. The reaper: one pass with 10,000 healthy (leased) jobs in Redis, in round trips, Redis
   commands and milliseconds (``bench.reaper_pass``).
2. The same ``N_JOBS`` small jobs (10-16-1, ``SMALL_EPOCHS`` epochs, ``SMALL_ROWS`` rows)
   trained in this process with the engine alone.
3. Submission: ``N_JOBS`` POSTs from ``SUBMIT_THREADS`` threads (real HTTP): jobs/s, errors.
4. Those jobs through 1 worker, then ``N_JOBS`` more through 2: jobs/s from the first job's
   start to the last one's end (from the job records; worker start-up is not counted), and
   the workers' CPU time a job against the engine's alone, which the other work of a shared
   machine changes far less than wall-clock rates; then the engine alone in 1 and 2 processes
   again, which shows how far 2 processes can scale on the machine at that moment.
5. Redis memory per job: the growth of ``used_memory`` over many jobs (everything a job adds:
   its keys, rq's, index entries, per-key overhead), queued and finished, for the small job and
   a typical one (``typical_job``); the arrays' part, which expires ``DATA_TTL_SECONDS`` after
   the job ends, by ``MEMORY USAGE`` of those keys.

The last line is ``bench-scale: jobs_per_s_1w=<x> jobs_per_s_2w=<x> scale=<2w/1w>
efficiency=<1w / in-process>``.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import redis
import requests

import store
from backprop import Trainer
from bench import reaper_pass
from devtools import embedded_redis
from devtools.probes import answers_ok, free_port
from devtools.processes import cpu_seconds, stop_all, wait_until
from store import FINAL_STATUSES
from workers.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
N_JOBS = int(os.environ.get("BENCH_JOBS", "200"))
SMALL_ROWS, SMALL_EPOCHS = 200, 200
N_TYPICAL = int(os.environ.get("BENCH_TYPICAL_JOBS", "10"))
SUBMIT_THREADS = int(os.environ.get("BENCH_SUBMIT_THREADS", "8"))
REAPER_JOBS = 10_000
REAPER_PASSES = 5
RAISED = {
    "MAX_ACTIVE_JOBS": "100000",
    "RATE_LIMIT_SUBMIT": "1000000/minute",
}
RUN_DEADLINE_SECONDS = 1800


def classifier_job(
    seed: int, rows: int, inputs: int, hidden: list[int], activation: str, epochs: int, **training
) -> dict:
    """A binary classifier of ``inputs``-``hidden``-1 on ``rows`` rows of its own (a linear
    boundary), trained with Adam at 0.01; ``training`` adds to or overrides its settings."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, inputs))
    y = (X @ rng.standard_normal(inputs) > 0).astype(float)[:, None]
    layers = [{"units": units, "activation": activation} for units in hidden]
    return {
        "network": {"layers": [*layers, {"units": 1, "activation": "sigmoid"}], "seed": seed},
        "training": {
            "loss": "binary_crossentropy",
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": epochs,
            **training,
        },
        "data": {"X": X.tolist(), "y": y.tolist()},
    }


def small_job(i: int) -> dict:
    """Job ``i`` of the batch: a 10-16-1 classifier on its own 200 rows."""
    return classifier_job(i, SMALL_ROWS, 10, [16], "tanh", SMALL_EPOCHS)


def typical_job(i: int) -> dict:
    """A typical job for sizing: 1,000 rows of 20 inputs, 32-16-1, 500 full-batch epochs, a
    20 % validation split (history: loss, accuracy and their val_ twins)."""
    return classifier_job(
        10_000 + i, 1000, 20, [32, 16], "relu", 500, batch_size=None, validation={"fraction": 0.2}
    )


# -- 1. the reaper ---------------------------------------------------------------------------


def reaper_figure() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = subprocess.Popen(
            embedded_redis.command(port, Path(tmp), ("--save", "")), stdout=subprocess.DEVNULL
        )
        try:
            embedded_redis.wait_until_ready(server, port)
            return reaper_pass_figure(embedded_redis.url(port))
        finally:
            stop_all([server], 10)


def reaper_pass_figure(url: str) -> str:
    """The figure for the Redis at ``url``, which the 10,000 jobs are added to."""
    conn = redis.Redis.from_url(url)
    counting = reaper_pass.counting_client(url)
    try:
        reaper_pass.add_started_jobs(conn, REAPER_JOBS)
        trips, commands, millis = [], [], []
        for _ in range(REAPER_PASSES):
            before = reaper_pass.CountingConnection.sent
            n, ms = reaper_pass.measure(counting, Settings())
            # measure's own CONFIG RESETSTAT and INFO are two of the round trips
            trips.append(reaper_pass.CountingConnection.sent - before - 2)
            commands.append(n)
            millis.append(ms)
    finally:
        conn.close()
        counting.close()
    return (
        f"reaper pass at {REAPER_JOBS:,} active jobs: round_trips={trips[-1]} "
        f"redis_commands={commands[-1]} median_ms={np.median(millis):.2f}"
    )


# -- 2. the engine alone ---------------------------------------------------------------------


def train_all(jobs: list[dict]) -> None:
    for job in jobs:
        spec = {"network": job["network"], "training": job["training"]}
        Trainer(spec, job["data"]["X"], job["data"]["y"]).fit()


def in_process_jobs_per_s(jobs: list[dict], processes: int = 1) -> tuple[float, float]:
    """The engine alone, in this process or split over ``processes`` (which shows how far two
    processes scale on this machine at this moment): ``(jobs per second, CPU ms a job)``; the
    CPU time is this process's, so only measured with one process."""
    train_all(jobs[:3])  # warm-up: first calls into NumPy, as a worker's first job makes them
    t0, cpu0 = time.perf_counter(), time.process_time()
    if processes == 1:
        train_all(jobs)
    else:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(train_all, [jobs[i::processes] for i in range(processes)]))
    cpu_ms = (time.process_time() - cpu0) * 1000 / len(jobs)
    return len(jobs) / (time.perf_counter() - t0), cpu_ms if processes == 1 else float("nan")


# -- 3 to 5. the stack -----------------------------------------------------------------------


class Stack:
    """scripts/run.py with no workers of its own; workers are started here, as processes."""

    def __init__(self, tmp: Path):
        self.redis_port, self.port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.redis_url = embedded_redis.url(self.redis_port)
        self.env = {
            **os.environ,
            **RAISED,
            "REDIS_PORT": str(self.redis_port),
            "PORT": str(self.port),
            "VAR_DIR": str(tmp),
            "WORKERS": "0",
            "WEBHOOK_WORKERS": "0",
        }
        self.env.pop("REDIS_URL", None)
        self.run = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: answers_ok(f"{self.base}/healthz"), 60, self.run, "make run's stack")
        self.conn = redis.Redis.from_url(self.redis_url)

    def workers(self, n: int) -> list[subprocess.Popen]:
        env = {**os.environ, "REDIS_URL": self.redis_url}
        command = [sys.executable, "-m", "workers"]
        return [
            subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for _ in range(n)
        ]

    def memory(self) -> tuple[int, int]:
        """``(MEMORY USAGE summed over every key, INFO's used_memory)``."""
        keys = sum(self.conn.memory_usage(k, samples=0) or 0 for k in self.conn.scan_iter())
        return keys, int(self.conn.info("memory")["used_memory"])

    def stop(self) -> None:
        self.conn.close()
        self.run.send_signal(signal.SIGTERM)
        stop_all([self.run], 60)


def submit_all(base: str, jobs: list[dict]) -> tuple[list[str], float, int]:
    """POST every job from SUBMIT_THREADS threads: ``(ids, jobs per second, errors)``."""
    local = threading.local()

    def post(job: dict) -> str | None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        try:
            response = session.post(f"{base}/v1/jobs", json=job, timeout=60)
        except requests.RequestException:
            return None
        return response.json()["id"] if response.status_code == 202 else None

    t0 = time.perf_counter()
    with ThreadPoolExecutor(SUBMIT_THREADS) as pool:
        ids = list(pool.map(post, jobs))
    elapsed = time.perf_counter() - t0
    accepted = [job_id for job_id in ids if job_id]
    return accepted, len(jobs) / elapsed, len(jobs) - len(accepted)


def wait_until_ended(conn, ids: list[str]) -> list[dict]:
    deadline = time.monotonic() + RUN_DEADLINE_SECONDS
    while True:
        records = [store.get_job(conn, job_id) for job_id in ids]
        if all(r["status"] in FINAL_STATUSES for r in records):
            return records
        if time.monotonic() > deadline:
            sys.exit("bench-scale: the jobs did not end in time")
        time.sleep(0.2)


def jobs_per_s(records: list[dict]) -> float:
    """Jobs over the time from the first one's start to the last one's end."""
    first = min(datetime.fromisoformat(r["started_at"]) for r in records)
    last = max(datetime.fromisoformat(r["ended_at"]) for r in records)
    return len(records) / (last - first).total_seconds()


def per_job_ms(records: list[dict], n_workers: int) -> tuple[float, float]:
    """A worker's mean time per job: ``(from start_attempt to the end, the rest)``; the rest
    is rq's bookkeeping, the dequeue, loading the job and building its trainer."""
    spans = [
        (datetime.fromisoformat(r["ended_at"]) - datetime.fromisoformat(r["started_at"]))
        for r in records
    ]
    span = sum(s.total_seconds() for s in spans) / len(records)
    per_job = n_workers / jobs_per_s(records)
    return span * 1000, (per_job - span) * 1000


def run_through(stack: Stack, ids: list[str], n_workers: int) -> tuple[float, float]:
    """Run the queued jobs ``ids`` through ``n_workers`` new worker processes: ``(jobs per
    second, the workers' CPU ms a job)``."""
    workers = stack.workers(n_workers)
    try:
        # The workers' CPU time from their first job on (not their start-up), to their last.
        while store.get_job(stack.conn, ids[0])["status"] == "queued":
            time.sleep(0.05)
        cpu0 = sum(cpu_seconds(w.pid) for w in workers)
        records = wait_until_ended(stack.conn, ids)
        cpu_ms = (sum(cpu_seconds(w.pid) for w in workers) - cpu0) * 1000 / len(ids)
    finally:
        stop_all(workers, 30)
    failed = [r for r in records if r["status"] != "finished"]
    if failed:
        sys.exit(f"bench-scale: {len(failed)} jobs did not finish: {failed[0]}")
    rate = jobs_per_s(records)
    span, rest = per_job_ms(records, n_workers)
    say(
        f"{n_workers} worker(s): {rate:.2f} jobs/s; per job and worker: {span:.1f} ms started "
        f"to ended, {rest:.1f} ms between jobs; worker CPU {cpu_ms:.1f} ms a job"
    )
    return rate, cpu_ms


def array_bytes(conn, ids: list[str]) -> int:
    """MEMORY USAGE of the jobs' training arrays (which expire after DATA_TTL_SECONDS)."""
    total = 0
    for job_id in ids:
        for key in conn.scan_iter(match=store.array_key(job_id, "*")):
            total += conn.memory_usage(key, samples=0) or 0
    return total


def per_job(after: tuple[int, int], before: tuple[int, int], n: int) -> str:
    keys, used = ((a - b) / n for a, b in zip(after, before, strict=True))
    return f"{keys:,.0f} B (used_memory: {used:,.0f} B)"


def sizing(stack: Stack, jobs: list[dict], n_workers: int, what: str) -> None:
    """Print the Redis bytes per queued and per finished job for ``jobs``."""
    before = stack.memory()
    ids, _, errors = submit_all(stack.base, jobs)
    if errors:
        sys.exit(f"bench-scale: {errors} submissions failed")
    queued = stack.memory()
    run_through(stack, ids, n_workers)
    say_sizes(stack, ids, before, queued, what)


def say_sizes(stack: Stack, ids: list[str], before, queued, what: str) -> None:
    """Print bytes per job: queued (``queued`` against ``before``) and finished (now)."""
    arrays = array_bytes(stack.conn, ids) / len(ids)
    say(
        f"redis per {what} job: queued {per_job(queued, before, len(ids))}; finished "
        f"{per_job(stack.memory(), before, len(ids))}; of which training arrays, which "
        f"expire DATA_TTL_SECONDS after the end: {arrays:,.0f} B"
    )


T0 = time.monotonic()


def say(line: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f} s] {line}", flush=True)


def main() -> None:
    print("bench-scale: figures from a 2-core machine shared with other work")
    say(reaper_figure())
    small = [small_job(i) for i in range(N_JOBS)]
    in_process, cpu_ms = in_process_jobs_per_s(small)
    say(f"in-process engine: {N_JOBS} jobs, {in_process:.2f} jobs/s, CPU {cpu_ms:.1f} ms a job")
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        try:
            before = stack.memory()
            ids, submit_rate, errors = submit_all(stack.base, small)
            queued = stack.memory()
            say(
                f"submit: {N_JOBS} jobs from {SUBMIT_THREADS} threads, "
                f"{submit_rate:.1f} jobs/s, errors={errors} (raised: "
                + ", ".join(f"{k}={v}" for k, v in RAISED.items())
                + ")"
            )
            one, worker_cpu_ms = run_through(stack, ids, 1)
            say_sizes(stack, ids, before, queued, "small")
            more = [small_job(N_JOBS + i) for i in range(N_JOBS)]
            ids, submit_rate_2, errors_2 = submit_all(stack.base, more)
            errors += errors_2
            say(f"submit again: {submit_rate_2:.1f} jobs/s, errors={errors_2}")
            two, _ = run_through(stack, ids, 2)
            # The most 2 processes can scale on this machine now, with whatever else it runs.
            alone = [in_process_jobs_per_s(more, p)[0] for p in (1, 2)]
            say(
                f"engine alone, now: 1 process {alone[0]:.2f} jobs/s, 2 processes "
                f"{alone[1]:.2f} jobs/s: scale {alone[1] / alone[0]:.2f}"
            )
            # The machine's load changes by the minute: the engine's rate before and after the
            # workers ran stands for it during their runs.
            in_process = (in_process + alone[0]) / 2
            if N_TYPICAL:
                sizing(stack, [typical_job(i) for i in range(N_TYPICAL)], 2, "typical")
        finally:
            stack.stop()
    if errors:
        sys.exit(f"bench-scale: {errors} submissions failed")
    # CPU time is what the machine's other work does not change much: the engine's CPU per
    # job over a worker's is the efficiency the wall-clock figure stands for on an idle machine.
    say(f"cpu efficiency (engine CPU / 1 worker's CPU a job): {cpu_ms / worker_cpu_ms:.2f}")
    print(
        f"bench-scale: jobs_per_s_1w={one:.2f} jobs_per_s_2w={two:.2f} "
        f"scale={two / one:.2f} efficiency={one / in_process:.2f}"
    )


if __name__ == "__main__":
    main()
