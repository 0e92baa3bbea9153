"""``make bench-serve``: single-row predictions under load, against a bare route of the same
server.

Starts an embedded Redis, a worker and gunicorn (the API's own config, ``WEB_CONCURRENCY``
processes), trains a small model, then drives ``POST /v1/models/{id}/predict`` and
``POST /bench/bare`` (the same requests, answered with a constant JSON) with wrk (Debian's
package) for the same duration and connections.
The last line is ``bench-serve: p50_ms=<x> p99_ms=<x> rps=<x> bare_rps=<x> ratio=<x>``.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from devtools import embedded_redis
from devtools.probes import answers_ok, free_port
from devtools.processes import stop_all, wait_until

ROOT = Path(__file__).resolve().parent.parent
DURATION = os.environ.get("BENCH_DURATION", "5s")
# Runs are interleaved and repeated, and the best of each kind is kept: on a small machine that
# also runs wrk, one run can be slowed by anything else that happens to run.
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
# Latency is measured one request at a time (a caller on its request path); throughput with
# enough connections to keep every gunicorn worker busy.
LATENCY_CONNECTIONS = "1"
LOAD_CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "4")
THREADS = "1"
MODEL_JOB = {
    "network": {
        "layers": [{"units": 16, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
        "seed": 0,
    },
    "training": {
        "loss": "categorical_crossentropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 20,
    },
    "data": {
        "X": [[i % 7 / 7, i % 5 / 5, i % 3 / 3, i % 2] for i in range(60)],
        "y": [[1 if i % 3 == k else 0 for k in range(3)] for i in range(60)],
    },
}
POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs": [[0.1, 0.2, 0.3, 0.4]]}'
"""
UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, connections: str, script: Path | None = None) -> dict:
    """Run wrk and read its rps and its 50th and 99th latency percentiles (ms)."""
    command = ["wrk", "-t", THREADS, "-c", connections, "-d", DURATION, "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if re.search(r"Non-2xx or 3xx responses", out):
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def percentile(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * UNIT_MS[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"p50_ms": percentile("50"), "p99_ms": percentile("99"), "rps": rps}


@contextmanager
def serving(app: str = "bench.serve_app:app", **extra_env: str) -> Iterator[str]:
    """An embedded Redis, one worker and gunicorn (the API's own config, ``WEB_CONCURRENCY``
    processes) serving ``app``; yields the API's base URL and stops them all afterwards."""
    data = Path(tempfile.mkdtemp(prefix="bench-"))
    redis_port, port = free_port(), free_port()
    env = {
        **os.environ,
        "REDIS_URL": embedded_redis.url(redis_port),
        "PORT": str(port),
        "RATE_LIMIT": "100000000/minute",
        **extra_env,
    }
    processes = []
    try:
        redis = subprocess.Popen(embedded_redis.command(redis_port, data, ("--save", "")))
        processes.append(redis)
        embedded_redis.wait_until_ready(redis, redis_port)
        processes.append(subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=env))
        api = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn_conf.py", app],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(api)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers_ok(f"{base}/healthz"), 30, api, "gunicorn")
        yield base
    finally:
        stop_all(processes[::-1], 10)
        shutil.rmtree(data, ignore_errors=True)


def train_model(base: str) -> str:
    """Train ``MODEL_JOB`` on the server at ``base``; its model id, once it predicts."""
    job = requests.post(f"{base}/v1/jobs", json=MODEL_JOB, timeout=10).json()["id"]
    deadline = time.monotonic() + 60
    while requests.get(f"{base}/v1/jobs/{job}", timeout=10).json()["status"] != "finished":
        if time.monotonic() > deadline:
            sys.exit("the benchmark model did not train")
        time.sleep(0.1)
    inputs = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}
    check = requests.post(predict_url(base, job), json=inputs, timeout=10)
    print("predict answer:", json.dumps(check.json()))
    return job


def predict_url(base: str, model_id: str) -> str:
    return f"{base}/v1/models/{model_id}/predict"


def post_script(directory: Path) -> Path:
    """wrk's script for ``POST_LUA``, written in ``directory``."""
    script = directory / "post.lua"
    script.write_text(POST_LUA)
    return script


@contextmanager
def warm_predict_stack(bench: str):
    """The stack serving a trained model, warmed up: yields ``(base, predict URL, wrk script)``.

    Args:
        bench: the benchmark's name, for the message when wrk is missing.
    """
    if shutil.which("wrk") is None:
        sys.exit(f"{bench} needs wrk: apt-get install wrk")
    with serving() as base, tempfile.TemporaryDirectory() as tmp:
        predict = predict_url(base, train_model(base))
        script = post_script(Path(tmp))
        wrk(predict, LOAD_CONNECTIONS, script)  # warm-up: model caches, connections
        yield base, predict, script


def main() -> None:
    with warm_predict_stack("bench-serve") as (base, predict, script):
        runs = {"latency": [], "predict": [], "bare": []}
        for _ in range(REPEATS):
            runs["latency"].append(wrk(predict, LATENCY_CONNECTIONS, script))
            runs["predict"].append(wrk(predict, LOAD_CONNECTIONS, script))
            # The same load: the same POST with the same body, answered with a constant.
            runs["bare"].append(wrk(f"{base}/bench/bare", LOAD_CONNECTIONS, script))
        for kind, results in runs.items():
            print(
                f"{kind:8s} runs: "
                + "; ".join(f"{r['rps']:.0f} rps p50 {r['p50_ms']}ms" for r in results)
            )
        latency = min(runs["latency"], key=lambda r: r["p50_ms"])
        served = max(runs["predict"], key=lambda r: r["rps"])
        bare = max(runs["bare"], key=lambda r: r["rps"])
        workers = os.environ.get("WEB_CONCURRENCY", "2")
        print(f"gunicorn workers={workers}, wrk {DURATION} per run, best of {REPEATS}")
        print(f"predict, {LATENCY_CONNECTIONS} connection:  {latency}")
        print(f"predict, {LOAD_CONNECTIONS} connections: {served}")
        print(f"bare,    {LOAD_CONNECTIONS} connections: {bare}")
        print(
            f"bench-serve: p50_ms={latency['p50_ms']:.3f} p99_ms={latency['p99_ms']:.3f} "
            f"rps={served['rps']:.0f} bare_rps={bare['rps']:.0f} "
            f"ratio={served['rps'] / bare['rps']:.2f}"
        )


if __name__ == "__main__":
    main()
