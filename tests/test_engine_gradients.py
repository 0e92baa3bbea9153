"""Backpropagation against central finite differences, in float64.

The analytic gradient is what ``Trainer.fit`` computes for one batch: a forward pass, the
loss's ``forward_backward`` and the network's ``backward``. The numerical one differentiates
the batch's reduced loss (the sum over samples for sse, the mean for the others), computed
by ``predict`` on the perturbed flat parameter buffer.
"""

import numpy as np
import pytest

from backprop import Trainer, activations

EPS = 1e-6
TOLERANCE = 1e-6
# No pre-activation or residual may lie this close to a kink (relu, leaky_relu, mae, huber).
KINK_MARGIN = 1e-4

ACTIVATIONS = [
    {"activation": "sigmoid"},
    {"activation": "tanh"},
    {"activation": "relu"},
    {"activation": "leaky_relu", "alpha": 0.2},
    {"activation": "elu", "alpha": 0.7},
    {"activation": "linear"},
]
OUTPUTS = [*ACTIVATIONS, {"activation": "softmax"}]
REGRESSION_LOSSES = [
    {"loss": "sse"},
    {"loss": "mse"},
    {"loss": "mae"},
    {"loss": "huber", "huber_delta": 0.5},
]


def name_of(config: dict) -> str:
    return config.get("activation") or config["loss"]


def make_trainer(layers: list[dict], loss: dict, X, Y, seed: int = 0) -> Trainer:
    spec = {
        "network": {"layers": layers, "init": {"scheme": "normal", "std": 0.8}, "seed": seed},
        "training": {**loss, "batch_size": None, "epochs": 1},
    }
    return Trainer(spec, X, Y)


def analytic_gradient(trainer: Trainer) -> np.ndarray:
    """One batch of ``Trainer.fit`` without the optimizer step."""
    net = trainer.network
    P, Z, dP = net.forward(trainer.X)
    trainer.loss.forward_backward(P, trainer.Y, Z, dP)
    net.backward(trainer.fused)
    return net.grads.copy()


def reduced_loss(trainer: Trainer) -> float:
    P, Z = trainer.network.predict(trainer.X, logits=True)
    total = trainer.loss.value(P, trainer.Y, Z)
    return total / len(trainer.X) if trainer.loss.reduction == "mean" else total


def numerical_gradient(trainer: Trainer) -> np.ndarray:
    params = trainer.network.params
    grad = np.zeros_like(params)
    for i in range(params.size):
        saved = params[i]
        params[i] = saved + EPS
        plus = reduced_loss(trainer)
        params[i] = saved - EPS
        minus = reduced_loss(trainer)
        params[i] = saved
        grad[i] = (plus - minus) / (2 * EPS)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12))


def assert_no_kinks(trainer: Trainer) -> None:
    """Every pre-activation is clear of zero, and every residual of the mae or huber kink."""
    A = trainer.X
    for layer in trainer.network.layers:
        Z, A = layer.predict(A)
        assert np.abs(Z).min() > KINK_MARGIN
    residual = np.abs(A - trainer.Y)
    kink = {"mae": 0.0, "huber": getattr(trainer.loss, "delta", None)}.get(trainer.loss.name)
    if kink is not None:
        assert np.abs(residual - kink).min() > KINK_MARGIN


def assert_gradient_checks(trainer: Trainer) -> None:
    assert trainer.network.params.dtype == np.float64
    assert_no_kinks(trainer)
    analytic = analytic_gradient(trainer)
    numerical = numerical_gradient(trainer)
    assert np.abs(analytic).max() > 1e-3  # the check is not vacuous
    assert relative_error(analytic, numerical) < TOLERANCE


@pytest.mark.parametrize("loss", REGRESSION_LOSSES, ids=name_of)
@pytest.mark.parametrize("output", OUTPUTS, ids=name_of)
@pytest.mark.parametrize("hidden", ACTIVATIONS, ids=name_of)
def test_regression_losses(hidden, output, loss):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 3))
    Y = rng.normal(0.3, 1.0, size=(6, 2))
    if output["activation"] == "softmax":
        Y = rng.dirichlet(np.ones(2), size=6)
    trainer = make_trainer([{"units": 4, **hidden}, {"units": 2, **output}], loss, X, Y)
    assert_gradient_checks(trainer)


@pytest.mark.parametrize("units", [1, 3])
@pytest.mark.parametrize("hidden", ACTIVATIONS, ids=name_of)
def test_sigmoid_binary_crossentropy(hidden, units):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(8, 3))
    Y = (rng.uniform(size=(8, units)) < 0.5).astype(float)
    layers = [{"units": 5, **hidden}, {"units": units, "activation": "sigmoid"}]
    trainer = make_trainer(layers, {"loss": "binary_crossentropy"}, X, Y)
    assert trainer.fused
    assert_gradient_checks(trainer)


@pytest.mark.parametrize("hidden", ACTIVATIONS, ids=name_of)
def test_softmax_categorical_crossentropy(hidden):
    rng = np.random.default_rng(13)
    X = rng.normal(size=(8, 3))
    Y = np.eye(3)[rng.integers(0, 3, size=8)]
    layers = [{"units": 5, **hidden}, {"units": 3, "activation": "softmax"}]
    trainer = make_trainer(layers, {"loss": "categorical_crossentropy"}, X, Y)
    assert trainer.fused
    assert_gradient_checks(trainer)


def test_softmax_mse_uses_the_unfused_softmax_backward():
    rng = np.random.default_rng(17)
    X = rng.normal(size=(8, 3))
    Y = np.eye(4)[rng.integers(0, 4, size=8)]
    layers = [{"units": 5, "activation": "tanh"}, {"units": 4, "activation": "softmax"}]
    trainer = make_trainer(layers, {"loss": "mse"}, X, Y)
    assert not trainer.fused
    assert_gradient_checks(trainer)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_hidden_layers(seed):
    rng = np.random.default_rng(100 + seed)
    X = rng.normal(size=(10, 5))
    Y = np.eye(3)[rng.integers(0, 3, size=10)]
    layers = [
        {"units": 7, "activation": "tanh"},
        {"units": 6, "activation": "relu"},
        {"units": 4, "activation": "elu"},
        {"units": 3, "activation": "softmax"},
    ]
    trainer = make_trainer(layers, {"loss": "categorical_crossentropy"}, X, Y, seed=seed)
    assert trainer.network.sizes == [5, 7, 6, 4, 3]
    assert_gradient_checks(trainer)


# Per-sample losses written out, then reduced the way each loss's gradient is scaled.
LOSS_VALUES = [
    ("sse", lambda P, Y, Z: 0.5 * ((Y - P) ** 2).sum()),
    ("mse", lambda P, Y, Z: ((Y - P) ** 2).mean()),
    ("mae", lambda P, Y, Z: np.abs(Y - P).mean()),
    (
        "huber",
        lambda P, Y, Z: np.where(
            np.abs(Y - P) <= 0.5, 0.5 * (Y - P) ** 2, 0.5 * (np.abs(Y - P) - 0.25)
        ).mean(),
    ),
    (
        "binary_crossentropy",
        lambda P, Y, Z: -(Y * np.log(P) + (1 - Y) * np.log(1 - P)).mean(),
    ),
    ("categorical_crossentropy", lambda P, Y, Z: -(Y * np.log(P)).sum(axis=1).mean()),
]


@pytest.mark.parametrize(("loss", "formula"), LOSS_VALUES, ids=[row[0] for row in LOSS_VALUES])
def test_reduced_loss_equals_the_textbook_formula(loss, formula):
    """Guards the gradient checks above: they differentiate the engine's own loss value."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(7, 3))
    output = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax"}
    if loss == "categorical_crossentropy":
        Y = np.eye(3)[rng.integers(0, 3, size=7)]
    elif loss == "binary_crossentropy":
        Y = (rng.uniform(size=(7, 3)) < 0.5).astype(float)
    else:
        Y = rng.normal(size=(7, 3)) * 1.5
    config = {"loss": loss, "huber_delta": 0.5} if loss == "huber" else {"loss": loss}
    layers = [
        {"units": 4, "activation": "tanh"},
        {"units": 3, "activation": output.get(loss, "linear")},
    ]
    trainer = make_trainer(layers, config, X, Y)
    P, Z = trainer.network.predict(trainer.X, logits=True)
    if loss == "huber":  # both branches of the piecewise loss are exercised
        assert (np.abs(Y - P) <= 0.5).any() and (np.abs(Y - P) > 0.5).any()
    assert reduced_loss(trainer) == pytest.approx(formula(P, Y, Z), rel=1e-12)


def test_one_epoch_of_fit_steps_along_the_checked_gradient():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6, 3))
    Y = rng.normal(size=(6, 2))
    layers = [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "linear"}]
    loss = {"loss": "mse", "optimizer": {"name": "sgd", "learning_rate": 0.1}}
    trainer = make_trainer(layers, loss, X, Y)
    before = trainer.network.params.copy()
    gradient = numerical_gradient(trainer)
    trainer.fit()
    np.testing.assert_allclose(trainer.network.params, before - 0.1 * gradient, rtol=0, atol=1e-9)


def test_weight_decay_adds_wd_times_w_to_weights_only():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(6, 3))
    Y = rng.normal(size=(6, 2))
    layers = [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "linear"}]
    lr, wd = 0.1, 0.3

    def one_epoch(weight_decay: float) -> Trainer:
        opt = {"name": "sgd", "learning_rate": lr, "weight_decay": weight_decay}
        trainer = make_trainer(layers, {"loss": "mse", "optimizer": opt}, X, Y)
        trainer.fit()
        return trainer

    plain, decayed = one_epoch(0.0), one_epoch(wd)
    initial = make_trainer(layers, {"loss": "mse"}, X, Y).network
    n_weights = initial.n_weights
    # The flat buffer holds every W, then every b.
    assert n_weights == sum(layer.W.size for layer in initial.layers)
    for layer in initial.layers:
        assert np.shares_memory(layer.W, initial.params[:n_weights])
        assert np.shares_memory(layer.b, initial.params[n_weights:])
    difference = decayed.network.params - plain.network.params
    expected = -lr * wd * initial.params[:n_weights]
    np.testing.assert_allclose(difference[:n_weights], expected, rtol=1e-9, atol=1e-15)
    assert np.abs(expected).min() > 1e-4
    assert (
        decayed.network.params[n_weights:].tobytes() == plain.network.params[n_weights:].tobytes()
    )


def test_every_registered_activation_is_gradient_checked():
    """An activation added to the engine must be added to the lists above, which these
    gradient checks run over."""
    assert {config["activation"] for config in OUTPUTS} == set(activations.ACTIVATIONS)
