"""make bench's method: per-round ratios, median and spread, the last line, one workload."""

import re

import numpy as np
import pytest

from backprop import Trainer
from bench import method
from bench import workload as w

LINE = re.compile(
    r"bench: torch_ratio_f32=\d+\.\d\d torch_ratio_f64=\d+\.\d\d jax_ratio_f32=\d+\.\d\d "
    r"jax_ratio_f64=\d+\.\d\d peak_fraction_f32=\d+\.\d\d xor_ratio=\d+\.\d\d "
    r"spread_f32=\d+\.\d\d-\d+\.\d\d"
)


def test_ratios_pair_rounds_by_index():
    assert method.round_ratios([2.0, 9.0, 4.0], [1.0, 3.0, 8.0]) == [2.0, 3.0, 0.5]


def test_ratios_refuse_unpaired_rounds():
    with pytest.raises(ValueError):
        method.round_ratios([1.0, 2.0], [1.0])


def test_median_of_ratios_ignores_one_outlying_round():
    # A round the engine lost to a neighbour's burst does not move the median.
    assert method.median([1.2, 1.3, 0.2, 1.25, 1.4]) == 1.25
    assert method.median([1.0, 2.0, 4.0, 3.0]) == 2.5


def test_spread_is_min_and_max():
    assert method.spread([1.2, 0.7, 1.9]) == (0.7, 1.9)
    assert method.summary([1.2, 0.7, 1.9]) == "1.20 (0.70-1.90)"


@pytest.mark.parametrize("fn", [method.median, method.spread])
def test_no_rounds_is_an_error(fn):
    with pytest.raises(ValueError):
        fn([])


def test_last_line_has_the_issue_format():
    ratios = {key: [1.0, 2.0, 3.0] for key in method.LINE_KEYS}
    ratios["torch_ratio_f32"] = [1.31, 0.9, 1.5]
    ratios["peak_fraction_f32"] = [0.5, 0.61, 0.7]
    line = method.bench_line(ratios)
    assert LINE.fullmatch(line), line
    assert line == (
        "bench: torch_ratio_f32=1.31 torch_ratio_f64=2.00 jax_ratio_f32=2.00 "
        "jax_ratio_f64=2.00 peak_fraction_f32=0.61 xor_ratio=2.00 spread_f32=0.90-1.50"
    )


def test_peers_visit_batches_in_the_engines_order():
    """The batch order the peers replay is the engine's own shuffle, epoch by epoch."""
    labels = np.arange(w.N_SAMPLES) % w.N_CLASSES
    Y = np.eye(w.N_CLASSES)[labels]
    trainer = Trainer(w.engine_spec(np.float32, 2), np.zeros((w.N_SAMPLES, 1)), Y)
    for order in w.batch_orders(2):
        np.testing.assert_array_equal(order, trainer.shuffle_rng.permutation(w.N_SAMPLES))


def test_peers_start_from_the_engines_initial_weights():
    X = np.zeros((4, w.N_FEATURES), np.float32)
    Y = np.eye(w.N_CLASSES, dtype=np.float32)[[0, 1, 2, 3]]
    trainer = Trainer(w.engine_spec(np.float32, 1), X, Y)
    for (W, b), (We, be) in zip(
        w.initial_parameters(np.float32), trainer.network.parameters(), strict=True
    ):
        np.testing.assert_array_equal(W, We)
        np.testing.assert_array_equal(b, be)
