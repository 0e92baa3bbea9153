"""Elementwise work split over threads gives the same bytes as unsplit work."""

import threading

import numpy as np
import pytest

from backprop import Trainer, elementwise
from backprop.optimizers import OPTIMIZERS

SIZE = 100_003  # not a multiple of any piece count


def test_bounds_cover_the_buffer_without_overlap():
    pieces = elementwise.bounds(SIZE, 3)
    assert [s.start for s in pieces] == [0, *(s.stop for s in pieces[:-1])]
    assert pieces[-1].stop == SIZE
    assert all(s.stop > s.start for s in pieces)


def test_small_buffers_are_not_split():
    # A thread hand-over costs more than a small update: the XOR network stays on one thread.
    split = elementwise.Split([np.zeros(9), np.zeros(9), None])
    assert len(split.parts) == 1
    assert split.parts[0][2] is None


def optimizer(name: str, dtype):
    config = {key: hp.default for key, hp in OPTIMIZERS[name].hyperparameters.items()}
    config.update(name=name, weight_decay=1e-3, schedule={"name": "constant"})
    if name == "sgd":
        config.update(momentum=0.9, nesterov=True)
    return OPTIMIZERS[name](SIZE, SIZE // 2, dtype, config)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("pieces", [2, 3, 7])
def test_split_updates_are_bit_identical(name, dtype, pieces):
    rng = np.random.default_rng(0)
    results = []
    for n in (1, pieces):
        params = rng.standard_normal(SIZE).astype(dtype)
        opt = optimizer(name, dtype)
        buffers = [params, None, opt._tmp, *(getattr(opt, s) for s in opt.slots)]
        grads_rng = np.random.default_rng(1)
        for _ in range(5):
            grads = grads_rng.standard_normal(SIZE).astype(dtype)
            buffers[1] = grads
            opt._split = (params, grads, elementwise.Split(buffers, pieces=n))
            opt.step(params, grads, 1e-2)
        results.append(params.tobytes())
        rng = np.random.default_rng(0)
    assert results[0] == results[1]


def test_pool_threads_keep_the_callers_error_state():
    """An overflow the caller ignores is ignored on a pool thread too, and one the caller
    raises on raises there (warnings are errors under pytest, so NumPy's default state on a
    new thread would fail both)."""
    big = np.full(SIZE, 1e30, np.float32)

    def square(a):
        np.multiply(a, a, out=a)

    def on_a_new_thread(errstate: dict):
        job = elementwise._Job(square, (), elementwise.Split([big], pieces=4).parts, errstate)
        thread = threading.Thread(target=job.work)  # what a pool thread runs
        thread.start()
        thread.join()
        return job

    assert on_a_new_thread({**np.geterr(), "over": "ignore"}).error is None
    assert np.isinf(big).all()
    big[:] = 1e30
    assert isinstance(on_a_new_thread({**np.geterr(), "over": "raise"}).error, FloatingPointError)


def test_an_error_in_a_piece_reaches_the_caller():
    split = elementwise.Split([np.ones(SIZE)], pieces=3)

    def fail(a):
        raise ValueError("piece failed")

    with pytest.raises(ValueError, match="piece failed"):
        split.run(fail)


class FakeClock:
    """The clock a Split times its trials with, advanced only by the work under test."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("split_is_faster", [True, False])
def test_a_trial_keeps_the_faster_way(monkeypatch, split_is_faster):
    """Trials alternate whole and split runs; the faster median wins until the next trial."""
    clock = FakeClock()
    monkeypatch.setattr(elementwise, "_clock", clock)
    split = elementwise.Split([np.zeros(SIZE)], pieces=None)
    split.parts = [(a,) for a in np.array_split(split.whole[0], 2)]  # as if on 2 cores
    seen = []

    def work(a):
        seen.append(a.shape[0])
        whole = a.shape[0] == SIZE
        clock.now += 0.001 if whole == split_is_faster else 0.0001

    for _ in range(2 * elementwise.TRIAL_RUNS):
        split.run(work)
    trial = list(seen)
    assert trial.count(SIZE) == elementwise.TRIAL_RUNS  # whole, then split, alternating
    assert trial[0] == SIZE and trial[1] < SIZE
    assert split.split_pays is split_is_faster
    seen.clear()
    split.run(work)
    assert sorted(seen) == ([SIZE // 2, SIZE // 2 + 1] if split_is_faster else [SIZE])
    clock.now += elementwise.TRIAL_EVERY_SECONDS  # the next run starts a new trial
    seen.clear()
    split.run(work)
    assert seen == [SIZE]


def train_bytes(spec, X, Y) -> bytes:
    trainer = Trainer(spec, X, Y)
    trainer.fit()
    return trainer.network.params.tobytes() + trainer.checkpoint()


def test_training_is_bit_identical_split_or_not(monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((64, 300))
    Y = np.eye(4)[rng.integers(0, 4, 64)]
    spec = {
        "network": {
            "layers": [{"units": 256, "activation": "relu"}, {"units": 4, "activation": "softmax"}],
            "seed": 5,
            "dtype": "float32",
        },
        "training": {
            "loss": "categorical_crossentropy",
            "optimizer": {"name": "adam", "learning_rate": 1e-2},
            "epochs": 3,
            "batch_size": 16,
        },
    }
    monkeypatch.setattr(elementwise, "MIN_PIECE", 10**9)
    unsplit = train_bytes(spec, X, Y)
    monkeypatch.setattr(elementwise, "MIN_PIECE", 1_000)
    monkeypatch.setattr(elementwise, "cores", lambda: 3)
    monkeypatch.setattr(elementwise.Split, "_try", elementwise.Split._run_split)  # always split
    assert train_bytes(spec, X, Y) == unsplit
