"""Preprocessing kept with the model: standardisation fitted on the training rows and applied
at prediction, class labels encoded one-hot and given back as they were, exact round trips,
and bit-identical resumes.
"""

import numpy as np
import pytest

from backprop import CheckpointError, Model, SpecError, Trainer, normalize
from backprop.serialization import pack, unpack

# Labels that are neither 0-based nor contiguous, one of them negative.
LABELS = np.array([3, 7, 9, -2])


def wide_inputs(n: int = 60, seed: int = 0) -> np.ndarray:
    """Inputs on very different scales, with one constant column."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 1000.0, 0.001, 0.0] + [0.0, 5000.0, -3.0, 7.0]
    return X


def labelled(n_per_class: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four separable blobs labelled with LABELS: X of shape (4n, 2), y of shape (4n, 1)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]]) * 100 + 1000
    which = np.repeat(np.arange(4), n_per_class)
    X = centers[which] + rng.normal(scale=30.0, size=(which.size, 2))
    order = rng.permutation(which.size)
    return X[order], LABELS[which[order]].reshape(-1, 1).astype(float)


def regression_spec(**overrides) -> dict:
    spec = {
        "network": {"layers": [{"units": 3, "activation": "tanh"}, {"units": 1}], "seed": 4},
        "training": {
            "loss": "mse",
            "optimizer": {"name": "adam", "learning_rate": 0.05},
            "epochs": 12,
            "batch_size": 8,
        },
        "preprocessing": {"standardize": True},
    }
    spec.update(overrides)
    return spec


def classes_spec(units: int = 4, **training) -> dict:
    return {
        "network": {
            "layers": [
                {"units": 8, "activation": "tanh"},
                {"units": units, "activation": "softmax"},
            ],
            "seed": 2,
        },
        "training": {
            "loss": "categorical_crossentropy",
            "optimizer": {"name": "adam", "learning_rate": 0.05},
            "epochs": 150,
            "batch_size": 16,
            **training,
        },
        "preprocessing": {"standardize": True},
        "targets": "classes",
    }


def target_of(X: np.ndarray) -> np.ndarray:
    return (X[:, :1] / 1000.0 + X[:, 1:2] / 1e6).reshape(-1, 1)


# -- the spec ---------------------------------------------------------------------------


def test_defaults_are_filled_in():
    spec = normalize(regression_spec(preprocessing=None))
    assert spec["preprocessing"] == {"standardize": False}
    assert spec["targets"] == "values"


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        ({"preprocessing": {"standardize": 1}}, "preprocessing.standardize"),
        ({"preprocessing": ["standardize"]}, "preprocessing"),
        ({"targets": "labels"}, "targets"),
        ({"targets": "classes"}, "targets"),  # a linear output cannot take classes
    ],
)
def test_bad_preprocessing_names_the_field(edit, path):
    with pytest.raises(SpecError) as info:
        normalize(regression_spec(**edit))
    assert info.value.path == path


# -- standardisation --------------------------------------------------------------------


def test_statistics_come_from_the_training_rows_only():
    X = wide_inputs()
    spec = regression_spec()
    spec["training"]["validation"] = {"fraction": 0.25}
    trainer = Trainer(spec, X, target_of(X))
    n_val = trainer.X_val.shape[0]
    assert n_val == 15 and trainer.X.shape[0] == 45
    # Which rows were held out: undo the scaling, then find them in X by their column 1.
    pre = trainer.preprocessor
    held_out = trainer.X_val[:, 1] * pre.scale[1] + pre.mean[1]
    train_rows = ~np.isclose(X[:, None, 1], held_out[None, :], rtol=0, atol=1e-6).any(axis=1)
    assert train_rows.sum() == 45
    np.testing.assert_array_equal(pre.mean, X[train_rows].mean(axis=0))
    assert not np.allclose(pre.mean, X.mean(axis=0))  # the held-out rows are left out
    std = X[train_rows].std(axis=0)
    np.testing.assert_array_equal(pre.scale[:3], std[:3])
    assert std[3] == 0 and pre.scale[3] == 1.0  # a constant column is centred, not scaled
    np.testing.assert_array_equal(trainer.X, (X[train_rows] - pre.mean) / pre.scale)
    assert np.allclose(trainer.X[:, :3].mean(axis=0), 0) and np.allclose(trainer.X[:, 3], 0)
    assert np.allclose(trainer.X[:, :3].std(axis=0), 1)


def test_predict_applies_the_statistics():
    X = wide_inputs()
    trainer = Trainer(regression_spec(), X, target_of(X))
    trainer.fit()
    model = trainer.model()
    pre = model.preprocessor
    by_hand = model.network.predict((X - pre.mean) / pre.scale)
    assert model.predict(X).tobytes() == by_hand.tobytes()
    assert not np.allclose(model.network.predict(X), by_hand)
    # What the trainer saw for its training rows is what the model sees for the same rows.
    assert model.network.predict(trainer.X).tobytes() == model.predict(X).tobytes()


def test_without_standardize_inputs_go_through_untouched():
    X = wide_inputs()
    trainer = Trainer(regression_spec(preprocessing={"standardize": False}), X, target_of(X))
    trainer.fit()
    model = trainer.model()
    assert model.preprocessor.mean is None
    assert model.predict(X).tobytes() == model.network.predict(X).tobytes()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_model_round_trip_is_exact(dtype):
    X = wide_inputs()
    spec = regression_spec()
    spec["network"]["dtype"] = dtype
    trainer = Trainer(spec, X, target_of(X))
    trainer.fit()
    model = trainer.model()
    blob = model.to_bytes()
    back = Model.from_bytes(blob)
    assert back.preprocessor.mean.tobytes() == model.preprocessor.mean.tobytes()
    assert back.preprocessor.scale.tobytes() == model.preprocessor.scale.tobytes()
    assert back.predict(X).dtype == np.dtype(dtype)
    assert back.predict(X).tobytes() == model.predict(X).tobytes()
    assert back.to_bytes() == blob


def test_a_model_written_before_preprocessing_loads_without_it():
    X = wide_inputs()
    trainer = Trainer(regression_spec(preprocessing={"standardize": False}), X, target_of(X))
    trainer.fit()
    model = trainer.model()
    meta, arrays = unpack(model.to_bytes())
    del meta["preprocessing"]
    old = Model.from_bytes(pack(meta, arrays))
    assert old.preprocessor.mean is None and old.classes is None
    assert old.predict(X).tobytes() == model.predict(X).tobytes()


# -- class labels -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier() -> tuple[Trainer, Model]:
    X, y = labelled()
    trainer = Trainer(classes_spec(), X, y)
    trainer.fit()
    return trainer, trainer.model()


def test_labels_are_one_hot_in_sorted_order(classifier):
    trainer, model = classifier
    X, y = labelled()
    assert model.classes == [-2, 3, 7, 9]
    expected = (y == np.array([[-2, 3, 7, 9]])).astype(float)
    np.testing.assert_array_equal(trainer.Y, expected)
    assert "accuracy" in trainer.history


def test_predicted_labels_are_the_original_labels(classifier):
    _, model = classifier
    X, y = labelled()
    labels = model.labels(X)
    assert labels.dtype == np.int64
    assert set(labels.tolist()) == set(LABELS.tolist())
    np.testing.assert_array_equal(labels, y[:, 0].astype(int))  # separable: all correct
    outputs = model.predict(X)
    by_unit = np.array([-2, 3, 7, 9])[outputs.argmax(axis=1)]
    np.testing.assert_array_equal(model.labels_from(outputs), by_unit)


def test_class_models_round_trip(classifier):
    _, model = classifier
    X, _ = labelled()
    back = Model.from_bytes(model.to_bytes())
    assert back.classes == model.classes
    assert back.labels(X).tolist() == model.labels(X).tolist()
    assert back.to_bytes() == model.to_bytes()


def test_validation_labels_use_the_training_classes():
    X, y = labelled()
    trainer = Trainer(classes_spec(epochs=2), X[:40], y[:40], (X[40:], y[40:]))
    assert trainer.Y_val.shape == (20, 4)
    np.testing.assert_array_equal(
        trainer.Y_val.argmax(axis=1), np.searchsorted([-2, 3, 7, 9], y[40:, 0])
    )
    trainer.fit()
    assert "val_accuracy" in trainer.history


@pytest.mark.parametrize(
    ("units", "y", "validation_y", "path"),
    [
        (3, None, None, "network.layers.1.units"),  # four classes, three units
        (4, [[0.5]], None, "data.y"),  # not an integer
        (4, "two-columns", None, "data.y"),
        (4, None, [[11.0]], "training.validation.y"),  # a label training never saw
    ],
)
def test_class_label_errors_name_the_field(units, y, validation_y, path):
    X, labels = labelled()
    if isinstance(y, list):
        labels = labels.copy()
        labels[0] = y[0]
    elif y == "two-columns":
        labels = np.hstack([labels, labels])
    validation = None
    if validation_y is not None:
        validation = (X[:1], np.array(validation_y))
    with pytest.raises(SpecError) as info:
        Trainer(classes_spec(units=units), X, labels, validation)
    assert info.value.path == path


# -- checkpoints ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kill_at", [1, 5])
def test_resume_with_preprocessing_is_bit_identical(dtype, kill_at):
    X, y = labelled()
    spec = classes_spec(epochs=12, validation={"fraction": 0.25})
    spec["network"]["dtype"] = dtype
    full = Trainer(spec, X, y)
    full.fit()

    first = Trainer(spec, X, y)
    first.fit(callback=lambda epoch, logs: epoch == kill_at)
    blob = first.checkpoint()
    resumed = Trainer(spec, X, y)
    resumed.restore(blob)
    resumed.fit()
    assert resumed.network.params.tobytes() == full.network.params.tobytes()
    assert resumed.history == full.history
    assert resumed.model().to_bytes() == full.model().to_bytes()


def test_a_checkpoint_of_other_data_is_refused():
    """Same spec, other data: the fitted statistics differ, so the checkpoint is stale."""
    X = wide_inputs()
    trainer = Trainer(regression_spec(), X, target_of(X))
    trainer.fit(callback=lambda epoch, logs: epoch == 2)
    other = Trainer(regression_spec(), X * 2, target_of(X))
    with pytest.raises(CheckpointError):
        other.restore(trainer.checkpoint())
