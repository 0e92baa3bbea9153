"""Training metrics computed when the history is read (``fit(defer_metrics=True)``, the worker's
way) are the same numbers, bit for bit, as those computed every epoch; and the worker's callback
reads the clock every few epochs on a tiny network, not after each one."""

import copy

import numpy as np
import pytest

import store
from backprop import DivergenceError, Trainer
from backprop.deferred_metrics import DeferredMetrics
from examples.xor_article import X as XOR_X
from examples.xor_article import Y as XOR_Y
from examples.xor_article import article_spec
from tests.support.jobs import DIVERGING_JOB
from workers.progress import JobMonitor
from workers.settings import Settings

_rng = np.random.default_rng(0)
_X = _rng.standard_normal((37, 3))


def _spec(units, activation, loss, dtype="float64", **training):
    return {
        "network": {
            "layers": [
                {"units": 5, "activation": "tanh"},
                {"units": units, "activation": activation},
            ],
            "seed": 3,
            "dtype": dtype,
        },
        "training": {
            "loss": loss,
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": 700,
            "batch_size": None,
            **training,
        },
    }


CASES = {
    "article": (article_spec(3000), XOR_X, XOR_Y),
    "regression, 3 outputs": (_spec(3, "linear", "mse"), _X, _rng.standard_normal((37, 3))),
    "softmax, validation": (
        _spec(3, "softmax", "categorical_crossentropy", validation={"fraction": 0.2}),
        _X,
        np.eye(3)[_rng.integers(0, 3, 37)],
    ),
    "binary, float32": (
        _spec(2, "sigmoid", "binary_crossentropy", "float32"),
        _X,
        (_rng.random((37, 2)) > 0.5).astype(float),
    ),
    "early stopping on val_loss": (
        _spec(
            1,
            "linear",
            "mae",
            validation={"fraction": 0.3},
            early_stopping={"monitor": "val_loss", "patience": 3},
        ),
        _X,
        _rng.standard_normal((37, 1)),
    ),
}


class PauseAt:
    """A callback that stops training at the given epochs (as a worker's pause would)."""

    def __init__(self, *epochs):
        self.epochs = set(epochs)

    def __call__(self, epoch, logs):
        return epoch in self.epochs


@pytest.mark.parametrize("case", CASES)
def test_deferred_metrics_are_the_per_epoch_numbers(case):
    spec, X, Y = CASES[case]
    eager = Trainer(spec, X, Y)
    expected = eager.fit()
    deferred = Trainer(spec, X, Y)
    pause = PauseAt(5, 300, 301, 1000)
    while deferred.epoch < deferred.epochs and not deferred.stopped_early:
        deferred.fit(pause, defer_metrics=True)
        assert all(len(c) == deferred.epoch for c in deferred.history.values())
    assert deferred._deferred is not None  # the deferring path ran
    assert list(deferred.history) == list(expected)  # the same columns, in the same order
    assert deferred.history == expected


def test_a_checkpoint_taken_while_deferring_resumes_to_the_same_history():
    spec = article_spec(2000)
    full = Trainer(spec, XOR_X, XOR_Y)
    full.fit()
    first = Trainer(spec, XOR_X, XOR_Y)
    first.fit(PauseAt(777), defer_metrics=True)
    resumed = Trainer(spec, XOR_X, XOR_Y)
    resumed.restore(first.checkpoint())
    resumed.fit(defer_metrics=True)
    assert resumed.history == full.history
    assert resumed.model().to_bytes() == full.model().to_bytes()


def test_a_diverging_run_keeps_its_columns_of_one_length():
    job = copy.deepcopy(DIVERGING_JOB)
    data = job.pop("data")
    trainer = Trainer(job, data["X"], data["y"])
    with pytest.raises(DivergenceError):
        trainer.fit(defer_metrics=True)
    assert trainer._deferred is not None
    lengths = {name: len(column) for name, column in trainer.history.items()}
    assert set(lengths.values()) == {trainer.epoch - 1}, lengths


def test_large_or_metric_monitored_runs_compute_metrics_every_epoch():
    assert not DeferredMetrics.fits((10_000, 3))
    spec = _spec(1, "linear", "mse", early_stopping={"monitor": "mae", "patience": 3})
    seen = []
    trainer = Trainer(spec, _X, _rng.standard_normal((37, 1)))
    trainer.fit(lambda epoch, logs: seen.append("mae" in logs), defer_metrics=True)
    assert trainer._deferred is None and all(seen)


def test_the_worker_callback_reads_the_clock_every_few_epochs(redis_conn):
    job_id = store.new_id()
    trainer = Trainer(article_spec(10_000), XOR_X, XOR_Y)
    monitor = JobMonitor(redis_conn, job_id, trainer, Settings(), max_runtime=None)
    reads = []
    read = monitor.pacer.read
    monitor.pacer.read = lambda epoch: reads.append(epoch) or read(epoch)
    trainer.fit(monitor, defer_metrics=True)
    assert trainer.epoch == 10_000
    # Epochs of microseconds: one clock read per hundreds of them, not one per epoch.
    assert len(reads) < 10_000 // 20, len(reads)
    # Its stride at most doubles from one read to the next.
    strides = np.diff(reads)
    assert (strides[1:] <= 2 * strides[:-1]).all()
    monitor.flush(strict=True)
    assert store.load_history(redis_conn, job_id)["mae"] == trainer.history["mae"]
