"""Cross-entropy targets are probabilities: the engine refuses others, naming the field.

binary_crossentropy needs y in [0, 1]; categorical_crossentropy needs each row of y to be a
distribution (values >= 0 that sum to 1, one-hot being the usual case). Other losses, and class
labels that are one-hot encoded by the engine itself, are not held to this.
"""

import pytest

from backprop import SpecError, Trainer
from backprop.spec import check_data

X3 = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]


def spec(loss: str, units: int, activation: str, **extra) -> dict:
    return {
        "network": {
            "layers": [
                {"units": 3, "activation": "tanh"},
                {"units": units, "activation": activation},
            ],
            "seed": 1,
        },
        "training": {
            "loss": loss,
            "optimizer": {"name": "sgd", "learning_rate": 0.1},
            "epochs": 2,
            "batch_size": None,
        },
        **extra,
    }


CATEGORICAL = spec("categorical_crossentropy", 2, "softmax")
BINARY = spec("binary_crossentropy", 1, "sigmoid")

BAD_TARGETS = [
    # (spec, y, words of the message)
    (CATEGORICAL, [[1, 0], [1, 1], [0, 1]], "probability distribution (one-hot)"),
    (CATEGORICAL, [[1, 0], [0, 0], [0, 1]], "row 1"),
    (CATEGORICAL, [[2, -1], [1, 0], [0, 1]], "row 0"),
    (CATEGORICAL, [[1, 0], [0, 1], [0.5, 0.5 + 1e-5]], "row 2"),
    (BINARY, [[0], [1], [2]], "within [0, 1]"),
    (BINARY, [[0], [-0.5], [1]], "within [0, 1]"),
]


@pytest.mark.parametrize(("spec_", "y", "words"), BAD_TARGETS)
def test_the_trainer_refuses_targets_the_loss_cannot_take(spec_, y, words):
    with pytest.raises(SpecError) as info:
        Trainer(spec_, X3, y)
    assert info.value.path == "data.y"
    assert words in info.value.message


@pytest.mark.parametrize(("spec_", "y", "words"), BAD_TARGETS)
def test_validation_targets_are_held_to_the_same_rule(spec_, y, words):
    good = [[1, 0], [0, 1], [0, 1]] if spec_ is CATEGORICAL else [[0], [1], [1]]
    with pytest.raises(SpecError) as info:
        Trainer(spec_, X3, good, validation_data=(X3, y))
    assert info.value.path == "training.validation.y"
    assert words in info.value.message


@pytest.mark.parametrize(
    ("spec_", "y"),
    [
        (CATEGORICAL, [[1, 0], [0, 1], [0, 1]]),
        (CATEGORICAL, [[0.25, 0.75], [0.5, 0.5], [1 - 1e-7, 1e-7]]),  # soft labels
        (CATEGORICAL, [[0.3, 0.7 + 5e-7], [1.0, 0.0], [0.5, 0.5 - 5e-7]]),  # within 1e-6
        (BINARY, [[0], [1], [0.5]]),
        (spec("mse", 1, "sigmoid"), [[-3], [2], [7]]),
        (spec("categorical_crossentropy", 2, "softmax", targets="classes"), [3, 7, 7]),
    ],
    ids=["one-hot", "soft", "close-enough", "binary", "mse-any-range", "class-labels"],
)
def test_targets_the_loss_can_take_train(spec_, y):
    trainer = Trainer(spec_, X3, y)
    assert len(trainer.fit()["loss"]) == 2


def test_check_data_without_a_loss_checks_shapes_only():
    X, y = check_data(X3, [[5, 5], [5, 5], [5, 5]], 2)
    assert y.shape == (3, 2)
