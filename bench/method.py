"""The arithmetic of ``make bench``: per-round ratios, their median and spread, the last line.

A shared host speeds up and slows down while a benchmark runs. Contenders run interleaved,
one round after another, so each round's ratio compares measurements taken seconds apart; the
median of those ratios ignores a round that one contender lost to a neighbour, and the min-max
spread shows how much the host moved.
"""

import statistics
from collections.abc import Sequence

# The keys of the last line, in its order.
LINE_KEYS = (
    "torch_ratio_f32",
    "torch_ratio_f64",
    "jax_ratio_f32",
    "jax_ratio_f64",
    "peak_fraction_f32",
    "xor_ratio",
)


def round_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Each round's ratio: ``numerators[i] / denominators[i]``, rounds paired by index."""
    if len(numerators) != len(denominators):
        raise ValueError("one measurement per round on each side")
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def median(values: Sequence[float]) -> float:
    """The median of the per-round values (the mean of the middle two for an even count)."""
    if not values:
        raise ValueError("no rounds")
    return statistics.median(values)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(min, max) of the per-round values."""
    if not values:
        raise ValueError("no rounds")
    return min(values), max(values)


def summary(values: Sequence[float]) -> str:
    """``median (min-max)`` to two decimals, for the report lines above the last."""
    low, high = spread(values)
    return f"{median(values):.2f} ({low:.2f}-{high:.2f})"


def bench_line(ratios: dict[str, Sequence[float]], spread_key: str = "torch_ratio_f32") -> str:
    """The last line: the median of each ``LINE_KEYS`` entry's per-round values, then the
    min-max spread of ``spread_key``'s, each to two decimals."""
    fields = [f"{key}={median(ratios[key]):.2f}" for key in LINE_KEYS]
    low, high = spread(ratios[spread_key])
    return "bench: " + " ".join(fields) + f" spread_f32={low:.2f}-{high:.2f}"
