"""``make bench-data``: CSV ingestion against pandas.read_csv, interleaved.

A CSV like a user's (300,000 rows of 33 float columns, about 94 MB) is read, round by round,
by pandas.read_csv, by our parser (``service.dataset_formats.read_csv``), each in a process of
its own, and uploaded through ``POST /v1/datasets`` to the stack ``bench.serve.serving``
starts (parse, checks, npy, Redis). A warm-up round comes first and is not counted.

Each figure is the median of its rounds, with the min-max spread beside it; a ratio is the
median of the per-round ratios, so the host's drift between rounds cancels out. Peak memory
is the most the process's resident set grew above where it stood after a warm-up parse (the
libraries' code loaded, their thread pools started), over the arrays' bytes; a sampling thread
reads it every 2 ms.

The last line is ``bench-data: csv_mb_per_s=<x> pandas_ratio=<x> peak_rss_ratio=<x>``, where
csv_mb_per_s is the upload's throughput and pandas_ratio it over pandas.read_csv's.
"""

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROWS = int(os.environ.get("BENCH_DATA_ROWS", "300000"))
COLUMNS = 33  # 32 inputs and the target y
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
WARM_UP_BYTES = 6_000_000
MB = 1e6


def write_csv(path: Path) -> None:
    """ROWS rows of standard normals, 6 decimals, in blocks (the file, not the array, is big)."""
    rng = np.random.default_rng(0)
    header = ",".join([f"x{i}" for i in range(COLUMNS - 1)] + ["y"])
    with path.open("w") as out:
        out.write(header + "\n")
        for start in range(0, ROWS, 50_000):
            block = rng.standard_normal((min(50_000, ROWS - start), COLUMNS))
            np.savetxt(out, block, delimiter=",", fmt="%.6f")


def _resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reader(kind: str, dtype: str = "float64"):
    """``read(binary file) -> bytes of the arrays it made`` for ``kind``."""
    if kind == "pandas":
        import pandas

        return lambda f: int(pandas.read_csv(f).memory_usage(index=False).sum())

    from service.dataset_formats import read_csv

    def ours(f):
        X, y = read_csv(f, ["y"], dtype)
        return X.nbytes + y.nbytes

    return ours


def measure_one(kind: str, path: Path, dtype: str = "float64") -> dict:
    """In this process: one warm-up parse of the file's first lines, then the whole file,
    timed, with the resident set sampled. ``dtype`` is ours only (pandas reads float64)."""
    read = _reader(kind, dtype)
    with path.open("rb") as f:
        head = f.read(WARM_UP_BYTES)
    read(io.BytesIO(head[: head.rindex(b"\n") + 1]))
    del head
    base = _resident()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.wait(0.002):
            peak[0] = max(peak[0], _resident())

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    with path.open("rb") as f:
        array_bytes = read(f)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"seconds": seconds, "peak_ratio": (peak[0] - base) / array_bytes}


def run_one(kind: str, path: Path, dtype: str = "float64") -> dict:
    """``measure_one`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.data", "--one", kind, str(path), dtype],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(out.stdout.splitlines()[-1])


def upload(base: str, path: Path) -> float:
    """Seconds for ``POST /v1/datasets`` of the file as CSV; the dataset is deleted after."""
    with path.open("rb") as f:
        start = time.perf_counter()
        answer = requests.post(
            f"{base}/v1/datasets",
            params={"target": "y"},
            data=f,
            headers={"Content-Type": "text/csv"},
            timeout=600,
        )
        seconds = time.perf_counter() - start
    if answer.status_code != 201:
        sys.exit(f"upload refused: {answer.status_code} {answer.text[:300]}")
    requests.delete(f"{base}/v1/datasets/{answer.json()['id']}", timeout=60)
    return seconds


def spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    from bench.serve import serving

    with tempfile.TemporaryDirectory() as tmp, serving() as base:
        path = Path(tmp) / "data.csv"
        write_csv(path)
        size_mb = path.stat().st_size / MB
        print(f"{path.name}: {ROWS:,} rows x {COLUMNS} columns, {size_mb:.1f} MB")
        rounds = []
        for number in range(ROUNDS + 1):
            pandas_run = run_one("pandas", path)
            ours_run = run_one("ours", path)
            post_seconds = upload(base, path)
            label = "warm-up" if number == 0 else f"round {number}"
            print(
                f"{label}: pandas {pandas_run['seconds']:.3f} s, our parser "
                f"{ours_run['seconds']:.3f} s, POST /v1/datasets {post_seconds:.3f} s; peak "
                f"rss/arrays: pandas {pandas_run['peak_ratio']:.2f}, "
                f"ours {ours_run['peak_ratio']:.2f}"
            )
            if number:
                rounds.append((pandas_run, ours_run, post_seconds))
    pandas_mbps = [size_mb / p["seconds"] for p, _, _ in rounds]
    parse_mbps = [size_mb / o["seconds"] for _, o, _ in rounds]
    post_mbps = [size_mb / s for _, _, s in rounds]
    post_ratio = [post / pandas for post, pandas in zip(post_mbps, pandas_mbps, strict=True)]
    parse_ratio = [ours / pandas for ours, pandas in zip(parse_mbps, pandas_mbps, strict=True)]
    peaks = [o["peak_ratio"] for _, o, _ in rounds]
    print(f"medians (min-max) over {ROUNDS} interleaved rounds:")
    print(f"  pandas.read_csv      {spread(pandas_mbps, '.1f')} MB/s")
    print(f"  our parser           {spread(parse_mbps, '.1f')} MB/s, ratio {spread(parse_ratio)}")
    print(f"  POST /v1/datasets    {spread(post_mbps, '.1f')} MB/s, ratio {spread(post_ratio)}")
    print(f"  peak rss / arrays    ours {spread(peaks)}")
    print(
        f"bench-data: csv_mb_per_s={statistics.median(post_mbps):.1f} "
        f"pandas_ratio={statistics.median(post_ratio):.2f} "
        f"peak_rss_ratio={statistics.median(peaks):.2f}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(measure_one(sys.argv[2], Path(sys.argv[3]), *sys.argv[4:5])))
    else:
        main()
