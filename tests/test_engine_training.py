"""Training runs end to end: determinism, checkpoints, early stopping, learning, specs, models."""

import math

import numpy as np
import pytest

from backprop import CheckpointError, DivergenceError, Model, SpecError, Trainer
from backprop.serialization import pack, unpack

XOR_X = [[0, 0], [0, 1], [1, 0], [1, 1]]
XOR_Y = [[0], [1], [1], [0]]


def blobs(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in the plane: X of shape (3n, 2), one-hot Y of shape (3n, 3)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [3.0, 3.0], [-3.0, 3.0]])
    labels = np.repeat(np.arange(3), n_per_class)
    X = centers[labels] + rng.normal(scale=0.8, size=(labels.size, 2))
    order = rng.permutation(labels.size)
    return X[order], np.eye(3)[labels[order]]


def noisy_binary(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small, noisy two-class set that a wide net overfits quickly."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, :1] + 0.8 * rng.normal(size=(n, 1)) > 0).astype(float)
    return X, y


def regression(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """y = sin(x1) + x2**2 plus a little noise, on [-2, 2]**2."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    y = np.sin(X[:, 0]) + X[:, 1] ** 2 + rng.normal(scale=0.05, size=n)
    return X, y.reshape(-1, 1)


def r2_score(y, p) -> float:
    return 1.0 - float(((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def classifier_spec(**training) -> dict:
    return {
        "network": {
            "layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
            "seed": 3,
        },
        "training": {
            "loss": "binary_crossentropy",
            "optimizer": {"name": "adam", "learning_rate": 0.05},
            "epochs": 12,
            "batch_size": 7,
            **training,
        },
    }


# -- determinism ------------------------------------------------------------------------


def blobs_spec(dtype: str, **training) -> dict:
    return {
        "network": {
            "layers": [{"units": 6, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
            "init": {"scheme": "he_uniform"},
            "seed": 42,
            "dtype": dtype,
        },
        "training": {
            "loss": "categorical_crossentropy",
            "optimizer": {"name": "adam", "learning_rate": 0.02},
            "epochs": 40,
            "batch_size": 8,
            "shuffle": True,
            "validation": {"fraction": 0.25},
            "early_stopping": {"patience": 3, "min_delta": 1e-4},
            **training,
        },
    }


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_same_spec_data_and_seed_give_identical_bytes(dtype):
    X, Y = blobs(20)
    runs = []
    for _ in range(2):
        trainer = Trainer(blobs_spec(dtype), X, Y)
        trainer.fit()
        runs.append((trainer.model().to_bytes(), trainer.history))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == runs[1][1]
    assert {"val_loss", "val_accuracy"} <= runs[0][1].keys()


@pytest.mark.parametrize(
    "change",
    [{"network": {"seed": 43}}, {"training": {"shuffle": False}}],
    ids=["seed", "shuffle"],
)
def test_the_seed_and_shuffling_change_the_run(change):
    X, Y = blobs(20)
    spec = blobs_spec("float64")
    other = blobs_spec("float64")
    for part, values in change.items():
        other[part].update(values)
    histories = []
    for s in (spec, other):
        trainer = Trainer(s, X, Y)
        trainer.fit()
        histories.append(trainer.history["loss"])
    assert histories[0] != histories[1]


# -- checkpoints ------------------------------------------------------------------------

RESUME_CASES = [
    ("sgd_momentum", {"optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}}),
    (
        "sgd_nesterov",
        {"optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True}},
    ),
    ("adam", {"optimizer": {"name": "adam", "learning_rate": 0.05}}),
    (
        "adam_restore_best",
        {
            "optimizer": {"name": "adam", "learning_rate": 0.2},
            "validation": {"fraction": 0.3},
            "early_stopping": {"patience": 100, "restore_best": True},
        },
    ),
    (
        "adam_float32_early_stop",
        {
            "optimizer": {"name": "adam", "learning_rate": 0.2},
            "validation": {"fraction": 0.3},
            "early_stopping": {"patience": 6},
        },
    ),
]


@pytest.fixture(scope="module")
def uninterrupted() -> dict:
    """Each resume case's spec and its uninterrupted run, trained once."""
    X, y = noisy_binary()
    runs = {}
    for label, training in RESUME_CASES:
        spec = classifier_spec(**training)
        if "float32" in label:
            spec["network"]["dtype"] = "float32"
        trainer = Trainer(spec, X, y)
        trainer.fit()
        runs[label] = (spec, trainer)
    return runs


@pytest.mark.parametrize("kill_at", [1, 4, 7])
@pytest.mark.parametrize("label", [case[0] for case in RESUME_CASES])
def test_resume_from_a_checkpoint_is_bit_identical(uninterrupted, label, kill_at):
    spec, full = uninterrupted[label]
    X, y = noisy_binary()
    first = Trainer(spec, X, y)
    first.fit(callback=lambda epoch, logs: epoch == kill_at)
    assert first.epoch == kill_at
    blob = first.checkpoint()

    resumed = Trainer(spec, X, y)
    resumed.restore(blob)
    resumed.fit()
    assert resumed.network.params.dtype == full.network.params.dtype
    assert resumed.network.params.tobytes() == full.network.params.tobytes()
    assert resumed.history == full.history
    assert resumed.result_info() == full.result_info()


def test_the_resume_cases_exercise_early_stopping(uninterrupted):
    """Guards the cases above: best weights differ from the last ones, and one run stops."""
    _, best = uninterrupted["adam_restore_best"]
    assert best.result_info()["best_epoch"] < 4
    _, stopped = uninterrupted["adam_float32_early_stop"]
    assert stopped.stopped_early and 7 < stopped.epoch < 12


def test_pausing_keeps_the_live_weights():
    X, y = noisy_binary()
    spec = classifier_spec(**RESUME_CASES[3][1])
    trainer = Trainer(spec, X, y)
    trainer.fit(callback=lambda epoch, logs: epoch == 7)
    assert trainer.result_info()["best_epoch"] < 7
    live = trainer.evaluate(trainer.X_val, trainer.Y_val)["loss"]
    assert live == trainer.history["val_loss"][-1]


def test_restore_rejects_a_checkpoint_of_another_spec():
    X, y = noisy_binary()
    trainer = Trainer(classifier_spec(), X, y)
    trainer.fit(callback=lambda epoch, logs: epoch == 2)
    other = Trainer(classifier_spec(epochs=13), X, y)
    with pytest.raises(CheckpointError):
        other.restore(trainer.checkpoint())
    assert other.epoch == 0


def test_restore_refuses_a_checkpoint_of_the_unscaled_adam_moments():
    """Format 2 stored Adam's m and v; format 3 stores them divided by (1 - beta). Reading
    one as the other would resume with moments ten and a thousand times off."""
    X, y = noisy_binary()
    trainer = Trainer(classifier_spec(), X, y)
    trainer.fit(callback=lambda epoch, logs: epoch == 2)
    meta, arrays = unpack(trainer.checkpoint())
    assert meta["format"] == "backprop.checkpoint/3"
    old = pack({**meta, "format": "backprop.checkpoint/2"}, arrays)
    fresh = Trainer(classifier_spec(), X, y)
    with pytest.raises(CheckpointError):
        fresh.restore(old)
    assert fresh.epoch == 0


def damaged_blobs() -> list:
    X, y = noisy_binary()
    trainer = Trainer(classifier_spec(), X, y)
    trainer.fit(callback=lambda epoch, logs: epoch == 2)
    blob = trainer.checkpoint()
    flipped = bytearray(blob)
    flipped[blob.index(trainer.network.params.tobytes()) + 5] ^= 0xFF  # inside a weight
    return [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a checkpoint", id="garbage"),
        pytest.param(blob[: len(blob) // 2], id="truncated"),
        pytest.param(bytes(flipped), id="flipped-weight-byte"),
        pytest.param(trainer.model().to_bytes(), id="a-model"),
    ]


@pytest.mark.parametrize("blob", damaged_blobs())
def test_restore_rejects_damaged_blobs(blob):
    X, y = noisy_binary()
    with pytest.raises(CheckpointError):
        Trainer(classifier_spec(), X, y).restore(blob)


# -- early stopping ---------------------------------------------------------------------


def expected_stop(values: list, patience: int, min_delta: float, higher: bool):
    """(stop epoch or None, best epoch): stop after `patience` non-improving epochs, as Keras."""
    sign = 1.0 if higher else -1.0
    best, best_epoch, wait = None, 0, 0
    for epoch, value in enumerate(values, start=1):
        if best is None or sign * (value - best) > min_delta:
            best, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return None, best_epoch


EARLY_STOPPING = [
    ("val_loss", 0, 0.0, True),
    ("val_loss", 3, 0.0, True),
    ("val_loss", 3, 0.0, False),
    ("loss", 2, 0.01, True),
    ("val_accuracy", 2, 0.0, True),
]


@pytest.mark.parametrize(("monitor", "patience", "min_delta", "restore_best"), EARLY_STOPPING)
def test_early_stopping(monitor, patience, min_delta, restore_best):
    X, y = noisy_binary()
    es = {"monitor": monitor, "patience": patience, "min_delta": min_delta}
    spec = classifier_spec(
        epochs=60,
        validation={"fraction": 0.3},
        early_stopping={**es, "restore_best": restore_best},
    )
    trainer = Trainer(spec, X, y)
    trainer.fit()
    history = trainer.history
    stop, best = expected_stop(history[monitor], patience, min_delta, monitor == "val_accuracy")
    assert stop is not None and trainer.stopped_early
    assert trainer.epoch == stop == len(history["loss"])
    assert trainer.result_info()["best_epoch"] == best
    weights_of = best if restore_best else stop
    val_loss = trainer.evaluate(trainer.X_val, trainer.Y_val)["loss"]
    assert val_loss == history["val_loss"][weights_of - 1]
    assert (
        trainer.model().predict(trainer.X_val).tobytes()
        == trainer.network.predict(trainer.X_val).tobytes()
    )


# -- divergence -------------------------------------------------------------------------


def test_a_huge_learning_rate_raises_divergence_error_naming_the_epoch():
    X, y = regression(32, seed=0)
    spec = {
        "network": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1}], "seed": 0},
        "training": {
            "loss": "mse",
            "optimizer": {"name": "sgd", "learning_rate": 10.0},
            "epochs": 200,
            "batch_size": None,
        },
    }
    trainer = Trainer(spec, X, y)
    with pytest.raises(DivergenceError) as info:
        trainer.fit()
    error = info.value
    assert f"epoch {error.epoch}" in str(error)
    assert not math.isfinite(error.loss)
    assert trainer.epoch == error.epoch
    assert len(trainer.history["loss"]) == error.epoch - 1


# -- it learns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hidden", "init"),
    [
        ({"units": 4, "activation": "tanh"}, "glorot_uniform"),
        ({"units": 8, "activation": "relu"}, "he_uniform"),
    ],
    ids=["tanh", "relu"],
)
def test_learns_xor(hidden, init):
    spec = {
        "network": {
            "layers": [hidden, {"units": 1, "activation": "sigmoid"}],
            "init": {"scheme": init},
            "seed": 0,
        },
        "training": {
            "loss": "binary_crossentropy",
            "optimizer": {"name": "adam", "learning_rate": 0.05},
            "epochs": 400,
            "batch_size": None,
        },
    }
    trainer = Trainer(spec, XOR_X, XOR_Y)
    trainer.fit()
    assert trainer.history["accuracy"][-1] == 1.0
    assert trainer.model().labels(XOR_X).tolist() == [0, 1, 1, 0]


def test_learns_three_blobs():
    X, Y = blobs(100, seed=1)
    X_test, Y_test = X[240:], Y[240:]
    spec = {
        "network": {
            "layers": [{"units": 8, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
            "seed": 0,
        },
        "training": {
            "loss": "categorical_crossentropy",
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": 40,
            "batch_size": 16,
        },
    }
    trainer = Trainer(spec, X[:240], Y[:240])
    trainer.fit()
    labels = trainer.model().labels(X_test)
    assert np.mean(labels == Y_test.argmax(axis=1)) >= 0.95


def test_learns_a_smooth_regression():
    X, y = regression(500, seed=2)
    X_test, y_test = X[400:], y[400:]
    spec = {
        "network": {
            "layers": [{"units": 16, "activation": "tanh"}, {"units": 1, "activation": "linear"}],
            "seed": 0,
        },
        "training": {
            "loss": "mse",
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": 150,
            "batch_size": 32,
        },
    }
    trainer = Trainer(spec, X[:400], y[:400], validation_data=(X_test, y_test))
    trainer.fit()
    score = r2_score(y_test, trainer.model().predict(X_test))
    assert score >= 0.9
    assert trainer.history["val_r2"][-1] == pytest.approx(score, abs=1e-9)


# -- validation -------------------------------------------------------------------------

VALIDATION_KINDS = [
    ("softmax", {"units": 3, "activation": "softmax"}, "categorical_crossentropy", ["accuracy"]),
    ("binary", {"units": 1, "activation": "sigmoid"}, "binary_crossentropy", ["accuracy"]),
    ("regression", {"units": 3, "activation": "linear"}, "mse", ["mae", "r2"]),
]


@pytest.mark.parametrize("mode", ["explicit", "fraction"])
@pytest.mark.parametrize(
    ("kind", "output", "loss", "metrics"), VALIDATION_KINDS, ids=[k[0] for k in VALIDATION_KINDS]
)
def test_validation_logs_val_loss_and_metrics(kind, output, loss, metrics, mode):
    X, Y = blobs(10)
    if kind == "binary":
        Y = Y[:, :1]
    spec = {
        "network": {"layers": [{"units": 4, "activation": "tanh"}, output], "seed": 0},
        "training": {"loss": loss, "epochs": 3, "batch_size": 8},
    }
    if mode == "fraction":
        spec["training"]["validation"] = {"fraction": 0.2}
        trainer = Trainer(spec, X, Y)
        assert len(trainer.X_val) == 6 and len(trainer.X) == 24
        rows = np.concatenate([trainer.X, trainer.X_val])
        assert sorted(map(tuple, rows)) == sorted(map(tuple, X))
    else:
        trainer = Trainer(spec, X[:20], Y[:20], validation_data=(X[20:], Y[20:]))
    trainer.fit()
    expected = {"epoch", "loss", *metrics, "val_loss", *(f"val_{m}" for m in metrics)}
    assert set(trainer.history) == expected
    assert all(len(column) == 3 for column in trainer.history.values())
    final = trainer.evaluate(trainer.X_val, trainer.Y_val, prefix="val_")
    assert final == {key: trainer.history[key][-1] for key in final}


# -- dtypes and initial weights -----------------------------------------------------------


def test_float32_keeps_float32_parameters():
    X, Y = blobs(10)
    trainer = Trainer(blobs_spec("float32", validation=None, early_stopping=None), X, Y)
    trainer.fit()
    assert trainer.network.params.dtype == np.float32
    assert trainer.X.dtype == np.float32
    model = Model.from_bytes(trainer.model().to_bytes())
    assert model.predict(X).dtype == np.float32
    assert all(W.dtype == b.dtype == np.float32 for W, b in model.network.parameters())


INITIAL_WEIGHTS = [
    {"W": [[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]], "b": [0.01, 0.02, 0.03]},
    {"W": [[1.0], [-1.0], [0.5]], "b": [-0.25]},
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_explicit_initial_weights_are_used_exactly(dtype):
    spec = {
        "network": {
            "layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
            "seed": 0,
            "dtype": dtype,
        },
        "training": {"loss": "binary_crossentropy"},
        "initial_weights": INITIAL_WEIGHTS,
    }
    trainer = Trainer(spec, XOR_X, XOR_Y)
    for (W, b), given in zip(trainer.network.parameters(), INITIAL_WEIGHTS, strict=True):
        assert W.tobytes() == np.array(given["W"], dtype=dtype).tobytes()
        assert b.tobytes() == np.array(given["b"], dtype=dtype).tobytes()


BAD_INITIAL_WEIGHTS = [
    ("too-few-layers", INITIAL_WEIGHTS[:1], "initial_weights"),
    (
        "W-transposed",
        [{**INITIAL_WEIGHTS[0], "W": [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]]}, INITIAL_WEIGHTS[1]],
        "initial_weights.0.W",
    ),
    (
        "b-too-long",
        [INITIAL_WEIGHTS[0], {**INITIAL_WEIGHTS[1], "b": [0.0, 0.0]}],
        "initial_weights.1.b",
    ),
    (
        "W-nan",
        [INITIAL_WEIGHTS[0], {**INITIAL_WEIGHTS[1], "W": [[1.0], [math.nan], [0.5]]}],
        "initial_weights.1.W",
    ),
]


@pytest.mark.parametrize(
    ("weights", "path"),
    [row[1:] for row in BAD_INITIAL_WEIGHTS],
    ids=[row[0] for row in BAD_INITIAL_WEIGHTS],
)
def test_wrong_initial_weights_name_their_path(weights, path):
    spec = {
        "network": {
            "layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
        },
        "training": {"loss": "binary_crossentropy"},
        "initial_weights": weights,
    }
    with pytest.raises(SpecError) as info:
        Trainer(spec, XOR_X, XOR_Y)
    assert info.value.path == path


# -- spec errors --------------------------------------------------------------------------

HIDDEN = {"units": 3, "activation": "tanh"}
OUT = {"units": 1, "activation": "sigmoid"}
SOFTMAX = {"units": 2, "activation": "softmax"}
# (network changes, training changes, expected path)
BAD_SPECS = [
    ({"layers": []}, {}, "network.layers"),
    ({"layers": [{"units": 0}, OUT]}, {}, "network.layers.0.units"),
    ({"layers": [HIDDEN, {"units": 1.5}]}, {}, "network.layers.1.units"),
    ({"layers": [HIDDEN, {"units": 1, "activation": "swish"}]}, {}, "network.layers.1.activation"),
    ({"layers": [SOFTMAX, OUT]}, {}, "network.layers.0.activation"),
    ({"layers": [HIDDEN, {"units": 1, "activation": "softmax"}]}, {}, "network.layers.1.units"),
    (
        {"layers": [{"units": 3, "activation": "leaky_relu", "alpha": -1}, OUT]},
        {},
        "network.layers.0.alpha",
    ),
    ({"init": {"scheme": "zeros"}}, {}, "network.init.scheme"),
    ({"init": {"scheme": "uniform", "low": 1, "high": 0}}, {}, "network.init.high"),
    ({"init": {"scheme": "normal", "std": 0}}, {}, "network.init.std"),
    ({"init": {"scheme": "he_normal", "bias": "ones"}}, {}, "network.init.bias"),
    ({"seed": -1}, {}, "network.seed"),
    ({"seed": True}, {}, "network.seed"),
    ({"dtype": "float16"}, {}, "network.dtype"),
    ({}, {"loss": None}, "training.loss"),
    ({}, {"loss": "hinge"}, "training.loss"),
    ({}, {"loss": "categorical_crossentropy"}, "training.loss"),
    ({"layers": [HIDDEN, {"units": 1}]}, {"loss": "binary_crossentropy"}, "training.loss"),
    ({}, {"huber_delta": 0, "loss": "huber"}, "training.huber_delta"),
    ({}, {"optimizer": {"name": "lbfgs"}}, "training.optimizer.name"),
    ({}, {"optimizer": {"learning_rate": 0}}, "training.optimizer.learning_rate"),
    ({}, {"optimizer": {"learning_rate": "fast"}}, "training.optimizer.learning_rate"),
    ({}, {"optimizer": {"learning_rate": math.inf}}, "training.optimizer.learning_rate"),
    ({}, {"optimizer": {"weight_decay": -0.1}}, "training.optimizer.weight_decay"),
    ({}, {"optimizer": {"momentum": 1.5}}, "training.optimizer.momentum"),
    ({}, {"optimizer": {"nesterov": True}}, "training.optimizer.nesterov"),
    ({}, {"optimizer": {"name": "adam", "beta_1": 1.0}}, "training.optimizer.beta_1"),
    ({}, {"optimizer": {"name": "adam", "beta_2": -0.5}}, "training.optimizer.beta_2"),
    ({}, {"optimizer": {"name": "rmsprop", "rho": 2}}, "training.optimizer.rho"),
    ({}, {"optimizer": {"name": "adagrad", "epsilon": 0}}, "training.optimizer.epsilon"),
    ({}, {"optimizer": {"schedule": {"name": "cosine"}}}, "training.optimizer.schedule.name"),
    (
        {},
        {"optimizer": {"schedule": {"name": "step", "step_size": 0}}},
        "training.optimizer.schedule.step_size",
    ),
    (
        {},
        {"optimizer": {"schedule": {"name": "exponential", "gamma": 0}}},
        "training.optimizer.schedule.gamma",
    ),
    (
        {},
        {"optimizer": {"schedule": {"name": "inverse_time", "decay": -1}}},
        "training.optimizer.schedule.decay",
    ),
    ({}, {"epochs": 0}, "training.epochs"),
    ({}, {"batch_size": 0}, "training.batch_size"),
    ({}, {"validation": {"fraction": 1.0}}, "training.validation.fraction"),
    ({}, {"early_stopping": {"monitor": "val_loss"}}, "training.early_stopping.monitor"),
    ({}, {"early_stopping": {"monitor": "acc"}}, "training.early_stopping.monitor"),
    (
        {},
        {"early_stopping": {"monitor": "r2"}, "loss": "binary_crossentropy"},
        "training.early_stopping.monitor",
    ),
    ({}, {"early_stopping": {"patience": -1}}, "training.early_stopping.patience"),
    ({}, {"early_stopping": {"min_delta": -1}}, "training.early_stopping.min_delta"),
]


@pytest.mark.parametrize(
    ("network", "training", "path"), BAD_SPECS, ids=[row[2] for row in BAD_SPECS]
)
def test_spec_errors_name_the_field(network, training, path):
    spec = {
        "network": {"layers": [HIDDEN, OUT], "seed": 0, **network},
        "training": {"loss": "mse", **training},
    }
    with pytest.raises(SpecError) as info:
        Trainer(spec, XOR_X, XOR_Y)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("delta", [0.25, 1.0, 2.5])
def test_any_positive_huber_delta_is_accepted(delta):
    spec = {
        "network": {"layers": [HIDDEN, {"units": 1}], "seed": 0},
        "training": {"loss": "huber", "huber_delta": delta},
    }
    trainer = Trainer(spec, XOR_X, XOR_Y)
    assert trainer.spec["training"]["huber_delta"] == delta
    assert trainer.loss.delta == delta


BAD_DATA = [
    ("X-nan", [[0, 0], [0, math.nan]], [[0], [1]], None, "data.X"),
    ("X-1d", [0, 1], [[0], [1]], None, "data.X"),
    ("y-rows", XOR_X, [[0], [1]], None, "data.y"),
    ("y-columns", XOR_X, [[0, 1]] * 4, None, "data.y"),
    ("y-inf", XOR_X, [[0], [1], [math.inf], [0]], None, "data.y"),
    ("val-y-columns", XOR_X, XOR_Y, (XOR_X, [[0, 1]] * 4), "training.validation.y"),
]


@pytest.mark.parametrize(
    ("X", "y", "validation", "path"),
    [row[1:] for row in BAD_DATA],
    ids=[row[0] for row in BAD_DATA],
)
def test_data_errors_name_the_field(X, y, validation, path):
    spec = {"network": {"layers": [HIDDEN, OUT], "seed": 0}, "training": {"loss": "mse"}}
    with pytest.raises(SpecError) as info:
        Trainer(spec, X, y, validation_data=validation)
    assert info.value.path == path


# -- the portable model -------------------------------------------------------------------

# (id, output layer, loss, targets from blob labels, labels from outputs or None)
MODEL_KINDS = [
    (
        "softmax",
        {"units": 3, "activation": "softmax"},
        "categorical_crossentropy",
        lambda Y: Y,
        lambda P: P.argmax(axis=1),
    ),
    (
        "sigmoid-bce",
        {"units": 1, "activation": "sigmoid"},
        "binary_crossentropy",
        lambda Y: Y[:, :1],
        lambda P: (P[:, 0] >= 0.5).astype(int),
    ),
    (
        "sigmoid-bce-2",
        {"units": 2, "activation": "sigmoid"},
        "binary_crossentropy",
        lambda Y: Y[:, :2],
        lambda P: (P >= 0.5).astype(int),
    ),
    ("linear-mse", {"units": 3, "activation": "linear"}, "mse", lambda Y: Y, None),
    ("sigmoid-mse", {"units": 1, "activation": "sigmoid"}, "mse", lambda Y: Y[:, :1], None),
]


@pytest.mark.parametrize(
    ("output", "loss", "targets", "labels"),
    [row[1:] for row in MODEL_KINDS],
    ids=[row[0] for row in MODEL_KINDS],
)
def test_model_round_trip_and_labels(output, loss, targets, labels):
    X, Y = blobs(10)
    spec = {
        "network": {"layers": [{"units": 4, "activation": "elu"}, output], "seed": 0},
        "training": {"loss": loss, "epochs": 5, "batch_size": 8},
    }
    trainer = Trainer(spec, X, targets(Y))
    trainer.fit()
    model = trainer.model()
    copy = Model.from_bytes(model.to_bytes())
    assert copy.spec == model.spec == trainer.spec
    assert copy.info == model.info
    assert copy.predict(X).tobytes() == model.predict(X).tobytes()
    assert copy.to_bytes() == model.to_bytes()
    outputs = copy.predict(X)
    if labels is None:
        assert not copy.is_classifier
        assert copy.labels(X) is None
        with pytest.raises(ValueError):
            copy.predict_proba(X)
    else:
        assert copy.is_classifier
        assert copy.labels(X).tolist() == labels(outputs).tolist()
        assert copy.predict_proba(X).tobytes() == outputs.tobytes()


def test_from_bytes_rejects_a_checkpoint():
    X, y = noisy_binary()
    trainer = Trainer(classifier_spec(), X, y)
    with pytest.raises(ValueError):
        Model.from_bytes(trainer.checkpoint())
