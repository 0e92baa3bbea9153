"""Optimizer steps and learning-rate schedules against their textbook formulas."""

import numpy as np
import pytest

from backprop import Trainer, normalize
from backprop.optimizers import get_optimizer, schedule_lr

# Five parameters: the first three are weights, the last two biases.
N_WEIGHTS = 3
PARAMS = np.array([0.5, -1.2, 2.0, 0.3, -0.7])
GRADS = [np.array([0.1, -0.4, 0.25, -0.05, 0.6]), np.array([-0.3, 0.2, 0.15, 0.45, -0.1])]


def optimizer_config(optimizer: dict) -> dict:
    spec = {
        "network": {"layers": [{"units": 1}], "seed": 0},
        "training": {"loss": "mse", "optimizer": optimizer},
    }
    return normalize(spec)["training"]["optimizer"]


def sgd(p, grads, c):
    for g in grads:
        p = p - c["learning_rate"] * g
    return p


def momentum(p, grads, c):
    v = np.zeros_like(p)
    for g in grads:
        v = c["momentum"] * v - c["learning_rate"] * g
        p = p + v
    return p


def nesterov(p, grads, c):
    v = np.zeros_like(p)
    for g in grads:
        v = c["momentum"] * v - c["learning_rate"] * g
        p = p + c["momentum"] * v - c["learning_rate"] * g
    return p


def adam(p, grads, c):
    b1, b2 = c["beta_1"], c["beta_2"]
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - c["learning_rate"] * m_hat / (np.sqrt(v_hat) + c["epsilon"])
    return p


def rmsprop(p, grads, c):
    v = np.zeros_like(p)
    for g in grads:
        v = c["rho"] * v + (1 - c["rho"]) * g**2
        p = p - c["learning_rate"] * g / (np.sqrt(v) + c["epsilon"])
    return p


def adagrad(p, grads, c):
    acc = np.zeros_like(p)
    for g in grads:
        acc = acc + g**2
        p = p - c["learning_rate"] * g / (np.sqrt(acc) + c["epsilon"])
    return p


# A large epsilon, so that where it sits in the formula matters.
OPTIMIZERS = [
    ("sgd", {"name": "sgd", "learning_rate": 0.1}, sgd),
    ("momentum", {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}, momentum),
    (
        "nesterov",
        {"name": "sgd", "learning_rate": 0.1, "momentum": 0.8, "nesterov": True},
        nesterov,
    ),
    (
        "adam",
        {"name": "adam", "learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-2},
        adam,
    ),
    ("rmsprop", {"name": "rmsprop", "learning_rate": 0.01, "rho": 0.7, "epsilon": 1e-2}, rmsprop),
    ("adagrad", {"name": "adagrad", "learning_rate": 0.1, "epsilon": 1e-2}, adagrad),
]


def reference_run(reference, config: dict, n_steps: int, weight_decay: float):
    """``reference`` fed the gradients plus weight_decay * W, each W the one its step sees."""
    p, effective = PARAMS.copy(), []
    for g in GRADS[:n_steps]:
        decay = np.zeros_like(p)
        decay[:N_WEIGHTS] = weight_decay * p[:N_WEIGHTS]
        effective.append(g + decay)
        p = reference(PARAMS.copy(), effective, config)
    return p


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("n_steps", [1, 2])
@pytest.mark.parametrize(
    ("label", "optimizer", "reference"), OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS]
)
def test_steps_equal_the_textbook_formula(label, optimizer, reference, n_steps, weight_decay):
    config = optimizer_config({**optimizer, "weight_decay": weight_decay})
    opt = get_optimizer(PARAMS.size, N_WEIGHTS, np.float64, config)
    params = PARAMS.copy()
    for g in GRADS[:n_steps]:
        opt.step(params, g.copy(), config["learning_rate"])
    expected = reference_run(reference, config, n_steps, weight_decay)
    np.testing.assert_allclose(params, expected, rtol=1e-12, atol=1e-15)
    assert np.abs(params - PARAMS).min() > 1e-4  # every parameter moved


def test_weight_decay_leaves_biases_alone():
    plain = get_optimizer(PARAMS.size, N_WEIGHTS, np.float64, optimizer_config(OPTIMIZERS[0][1]))
    decayed = get_optimizer(
        PARAMS.size,
        N_WEIGHTS,
        np.float64,
        optimizer_config({**OPTIMIZERS[0][1], "weight_decay": 0.5}),
    )
    a, b = PARAMS.copy(), PARAMS.copy()
    plain.step(a, GRADS[0].copy(), 0.1)
    decayed.step(b, GRADS[0].copy(), 0.1)
    assert a[N_WEIGHTS:].tobytes() == b[N_WEIGHTS:].tobytes()
    np.testing.assert_allclose(b[:N_WEIGHTS] - a[:N_WEIGHTS], -0.1 * 0.5 * PARAMS[:N_WEIGHTS])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("label", "optimizer", "reference"), OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS]
)
def test_steps_keep_the_dtype(label, optimizer, reference, dtype):
    opt = get_optimizer(PARAMS.size, N_WEIGHTS, dtype, optimizer_config(optimizer))
    params = PARAMS.astype(dtype)
    opt.step(params, GRADS[0].astype(dtype), opt.config["learning_rate"])
    assert params.dtype == dtype
    _, slots = opt.state()
    assert all(slot.dtype == dtype for slot in slots.values())
    np.testing.assert_allclose(params, reference(PARAMS.copy(), GRADS[:1], opt.config), rtol=1e-5)


SCHEDULES = [
    ({"name": "constant"}, [0, 1, 7, 100], [0.1, 0.1, 0.1, 0.1]),
    (
        {"name": "step", "gamma": 0.5, "step_size": 3},
        [0, 2, 3, 5, 6, 9],
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125],
    ),
    ({"name": "exponential", "gamma": 0.9}, [0, 1, 2, 10], [0.1, 0.09, 0.081, 0.1 * 0.9**10]),
    ({"name": "inverse_time", "decay": 0.5}, [0, 1, 2, 4], [0.1, 0.1 / 1.5, 0.05, 0.1 / 3]),
]


@pytest.mark.parametrize(
    ("schedule", "epochs", "expected"), SCHEDULES, ids=[s[0]["name"] for s in SCHEDULES]
)
def test_schedule_values(schedule, epochs, expected):
    normalised = optimizer_config({"name": "sgd", "learning_rate": 0.1, "schedule": schedule})
    assert normalised["schedule"] == schedule
    values = [schedule_lr(0.1, normalised["schedule"], epoch) for epoch in epochs]
    assert values == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("schedule", "defaults"),
    [
        ({"name": "step"}, {"gamma": 0.5, "step_size": 10}),
        ({"name": "exponential"}, {"gamma": 0.5}),
        ({"name": "inverse_time"}, {"decay": 0.01}),
        (None, {}),
    ],
)
def test_schedule_defaults(schedule, defaults):
    normalised = optimizer_config({"name": "sgd", "schedule": schedule})["schedule"]
    assert normalised == {"name": (schedule or {"name": "constant"})["name"], **defaults}


@pytest.mark.parametrize(
    ("schedule", "epochs", "expected"), SCHEDULES, ids=[s[0]["name"] for s in SCHEDULES]
)
def test_trainer_sets_the_scheduled_rate_each_epoch(schedule, epochs, expected):
    spec = {
        "network": {"layers": [{"units": 1}], "seed": 0},
        "training": {
            "loss": "mse",
            "optimizer": {"name": "sgd", "learning_rate": 0.1, "schedule": schedule},
            "epochs": max(epochs) + 1,
        },
    }
    trainer = Trainer(spec, [[0.0], [1.0]], [[0.0], [1.0]])
    seen = []
    trainer.fit(callback=lambda epoch, logs: seen.append(trainer.learning_rate))
    # The callback runs after epoch ``e`` (1-based), which trained with the rate of epoch e - 1.
    assert [seen[e] for e in epochs] == pytest.approx(expected, rel=1e-12)
