"""Elementwise work split over threads gives the same bytes as unsplit work."""

import os
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
        buffers = [params, None, opt._tmp, opt._tmp2, *(getattr(opt, s) for s in opt.slots)]
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


def test_a_busy_host_runs_the_update_whole(monkeypatch):
    """With no idle core the pieces would only add hand-overs: the update runs in one call."""
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    monkeypatch.setattr(elementwise, "_idle", (True, -1e9))
    seen = []
    elementwise.Split([np.zeros(SIZE)]).run(lambda a: seen.append(a.shape[0]))
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
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # an idle host
    monkeypatch.setattr(elementwise, "_idle", (False, -1e9))
    assert train_bytes(spec, X, Y) == unsplit
