"""``make bench``: the engine against eager PyTorch and jit-compiled JAX, interleaved.

The workload is ``bench.workload`` (784-256-128-10, Adam, batch 128) in float32 and float64,
the same initial weights and batch order for every contender. Each round runs every contender
once, each in a fresh process (``bench.contenders``): engine, torch, JAX in float32, the same in
float64, then NumPy's float32 GEMM peak and the article's XOR run (engine, then the article's
loop). One warm-up round is discarded, then ``BENCH_ROUNDS`` (5) rounds count; each ratio is
the median of the per-round ratios (``bench.method``). ``BENCH_QUICK=1`` trains 1 epoch instead
of 5 (with ``BENCH_ROUNDS=1``, a quick look while developing).

The last line is ``bench: torch_ratio_f32=<m> torch_ratio_f64=<m> jax_ratio_f32=<m>
jax_ratio_f64=<m> peak_fraction_f32=<x> xor_ratio=<m> spread_f32=<min>-<max>``.
"""

import json
import os
import subprocess
import sys

from bench import method
from bench import workload as w

DTYPES = (("f32", "float32"), ("f64", "float64"))
PEERS = ("torch", "jax")
# torch's OpenMP threads spin while they wait; on a shared 2-core host one descheduled thread
# stalls the other, and a 128x784x256 product fell from 96 to 15 GFLOP/s. Passive waiting is
# the peer at its best there, so the ratio is not flattered by it.
PEER_ENV = {"torch": {"OMP_WAIT_POLICY": "PASSIVE"}}


def measure(name: str, dtype: str) -> dict:
    """One measurement in a fresh process: ``{"value": ..., "loss": ...}``."""
    env = {**os.environ, **PEER_ENV.get(name, {})}
    out = subprocess.run(
        [sys.executable, "-m", "bench.contenders", name, dtype],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_round() -> dict[str, dict]:
    """Every contender once, interleaved: ``{"engine_f32": {"value", "loss"}, ...}``."""
    results = {}
    for tag, dtype in DTYPES:
        for name in ("engine", *PEERS):
            results[f"{name}_{tag}"] = measure(name, dtype)
    results["gemm_f32"] = measure("gemm", "float32")
    for name in ("engine_xor", "article_xor"):
        results[name] = measure(name, "float64")
    return results


def blas_note() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i.get('internal_api')} {i.get('architecture', '?')} x{i.get('num_threads')}"
        for i in threadpool_info()
    )


def main() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS") or 5)
    warmup = 1
    print(f"BLAS: {blas_note()}")
    print(
        f"workload: {w.N_SAMPLES} samples, {'-'.join(map(str, w.SIZES))}, batch {w.BATCH}, "
        f"{w.epochs()} epochs; {warmup} warm-up + {rounds} rounds, interleaved"
    )
    runs = []
    for i in range(warmup + rounds):
        results = run_round()
        label = "warm-up" if i < warmup else f"round {i - warmup + 1}/{rounds}"
        print(
            f"{label}: "
            + ", ".join(
                f"{key} {r['value']:,.0f}"
                for key, r in results.items()
                if key.endswith(("f32", "f64"))
            )
            + f" samples/s (gemm in FLOP/s); xor engine {results['engine_xor']['value'] * 1e3:.0f}"
            f" ms, article {results['article_xor']['value'] * 1e3:.0f} ms",
            flush=True,
        )
        if i >= warmup:
            runs.append(results)

    def series(key):
        return [r[key]["value"] for r in runs]

    ratios = {}
    for tag, _ in DTYPES:
        for peer in PEERS:
            ratios[f"{peer}_ratio_{tag}"] = method.round_ratios(
                series(f"engine_{tag}"), series(f"{peer}_{tag}")
            )
    engine_flops = [rate * w.FLOPS_PER_SAMPLE for rate in series("engine_f32")]
    ratios["peak_fraction_f32"] = method.round_ratios(engine_flops, series("gemm_f32"))
    ratios["xor_ratio"] = method.round_ratios(series("engine_xor"), series("article_xor"))
    for tag, _ in DTYPES:
        rates = {name: method.median(series(f"{name}_{tag}")) for name in ("engine", *PEERS)}
        losses = {name: runs[-1][f"{name}_{tag}"]["loss"] for name in ("engine", *PEERS)}
        print(
            f"{tag}: median samples/s engine {rates['engine']:,.0f}, torch {rates['torch']:,.0f}, "
            f"jax {rates['jax']:,.0f}; final loss engine {losses['engine']:.6f}, "
            f"torch {losses['torch']:.6f}, jax {losses['jax']:.6f}"
        )
    gemm = method.median(series("gemm_f32"))
    print(
        f"peak: numpy f32 GEMM {gemm / 1e9:.0f} GFLOP/s (median of rounds); engine f32 "
        f"{method.median(engine_flops) / 1e9:.0f} GFLOP/s at {w.FLOPS_PER_SAMPLE / 1e6:.2f} "
        "MFLOP per sample"
    )
    for key, values in ratios.items():
        print(f"{key}: median (min-max) {method.summary(values)}")
    # Other bench lines (e.g. bench-xor-service) print here, before the last line.
    print(method.bench_line(ratios))


if __name__ == "__main__":
    main()
