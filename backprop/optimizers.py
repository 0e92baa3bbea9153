"""Optimizers and learning-rate schedules.

An optimizer updates one flat parameter buffer from one flat gradient buffer (every layer's
``W`` and ``b`` are views into them), so an update is a handful of in-place ufuncs over all
parameters at once. Moment buffers are allocated once; ``state()`` / ``load_state()`` carry
them through checkpoints.
"""

import math

import numpy as np


def schedule_lr(base: float, schedule: dict, epoch: int) -> float:
    """Learning rate for a 0-based ``epoch``.

    constant: base; step: base·gamma^⌊epoch/step_size⌋; exponential: base·gamma^epoch;
    inverse_time: base / (1 + decay·epoch).
    """
    name = schedule["name"]
    if name == "constant":
        return base
    if name == "step":
        return base * schedule["gamma"] ** (epoch // schedule["step_size"])
    if name == "exponential":
        return base * schedule["gamma"] ** epoch
    if name == "inverse_time":
        return base / (1.0 + schedule["decay"] * epoch)
    raise ValueError(f"unknown schedule {name!r}")


class Optimizer:
    """Base class.

    Args:
        size: number of parameters in the flat buffer.
        n_weights: the first ``n_weights`` entries are weights (biases follow); L2 weight
            decay applies to weights only.
        dtype: the parameters' dtype.
        config: the normalised optimizer spec (``learning_rate``, ``weight_decay``, ...).
    """

    name = ""
    slots: tuple[str, ...] = ()

    def __init__(self, size: int, n_weights: int, dtype, config: dict):
        self.config = config
        self.lr = float(config["learning_rate"])
        self.weight_decay = float(config.get("weight_decay", 0.0))
        self.n_weights = n_weights
        self.t = 0
        self._tmp = np.zeros(size, dtype)
        self._tmp2 = np.zeros(size, dtype) if self.slots else None
        for slot in self.slots:
            setattr(self, slot, np.zeros(size, dtype))

    def step(self, params, grads):
        """Apply one update in place.

        Args:
            params: ndarray of shape (n_params,).
            grads: ndarray of shape (n_params,); overwritten when weight decay is on.
        """
        self.t += 1
        if self.weight_decay:
            w = slice(0, self.n_weights)
            np.multiply(params[w], self.weight_decay, out=self._tmp[w])
            grads[w] += self._tmp[w]
        self._update(params, grads)

    def _update(self, params, grads):
        raise NotImplementedError

    def state(self) -> tuple[dict, dict]:
        """(scalars, arrays) that restore this optimizer exactly."""
        return {"t": self.t}, {slot: getattr(self, slot) for slot in self.slots}

    def load_state(self, scalars: dict, arrays: dict) -> None:
        self.t = int(scalars["t"])
        for slot in self.slots:
            np.copyto(getattr(self, slot), arrays[slot])


class SGD(Optimizer):
    """p ← p − lr·g; with momentum μ: v ← μ·v − lr·g, p ← p + v (Nesterov: p ← p + μ·v − lr·g)."""

    name = "sgd"

    def __init__(self, size, n_weights, dtype, config):
        self.momentum = float(config.get("momentum", 0.0))
        self.nesterov = bool(config.get("nesterov", False))
        self.slots = ("velocity",) if self.momentum else ()
        super().__init__(size, n_weights, dtype, config)

    def _update(self, params, grads):
        tmp = self._tmp
        np.multiply(grads, self.lr, out=tmp)
        if not self.momentum:
            params -= tmp
            return
        v = self.velocity
        v *= self.momentum
        v -= tmp
        if self.nesterov:
            params -= tmp
            np.multiply(v, self.momentum, out=tmp)
        else:
            np.copyto(tmp, v)
        params += tmp


class Adam(Optimizer):
    """Kingma & Ba: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − lr·m̂/(√v̂ + ε).

    The bias corrections are folded into the step size and ε, which is the same update
    written with two fewer passes over the parameters.
    """

    name = "adam"
    slots = ("m", "v")

    def _update(self, params, grads):
        b1 = self.config.get("beta_1", 0.9)
        b2 = self.config.get("beta_2", 0.999)
        eps = self.config.get("epsilon", 1e-8)
        tmp, tmp2 = self._tmp, self._tmp2
        m, v = self.m, self.v
        # m += (1 - b1) * (g - m)
        np.subtract(grads, m, out=tmp)
        tmp *= 1.0 - b1
        m += tmp
        # v += (1 - b2) * (g*g - v)
        np.multiply(grads, grads, out=tmp)
        tmp -= v
        tmp *= 1.0 - b2
        v += tmp
        c2 = math.sqrt(1.0 - b2**self.t)
        step = self.lr * c2 / (1.0 - b1**self.t)
        np.sqrt(v, out=tmp)
        tmp += eps * c2
        np.divide(m, tmp, out=tmp2)
        tmp2 *= step
        params -= tmp2


class RMSprop(Optimizer):
    """v ← ρv + (1−ρ)g², p ← p − lr·g/(√v + ε)."""

    name = "rmsprop"
    slots = ("v",)

    def _update(self, params, grads):
        rho = self.config.get("rho", 0.9)
        eps = self.config.get("epsilon", 1e-7)
        tmp, tmp2, v = self._tmp, self._tmp2, self.v
        np.multiply(grads, grads, out=tmp)
        tmp -= v
        tmp *= 1.0 - rho
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps
        np.divide(grads, tmp, out=tmp2)
        tmp2 *= self.lr
        params -= tmp2


class Adagrad(Optimizer):
    """G ← G + g², p ← p − lr·g/(√G + ε)."""

    name = "adagrad"
    slots = ("accumulator",)

    def _update(self, params, grads):
        eps = self.config.get("epsilon", 1e-7)
        tmp, tmp2, acc = self._tmp, self._tmp2, self.accumulator
        np.multiply(grads, grads, out=tmp)
        acc += tmp
        np.sqrt(acc, out=tmp)
        tmp += eps
        np.divide(grads, tmp, out=tmp2)
        tmp2 *= self.lr
        params -= tmp2


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, RMSprop, Adagrad)}


def get_optimizer(size: int, n_weights: int, dtype, config: dict) -> Optimizer:
    """Build the optimizer a normalised optimizer spec names."""
    return OPTIMIZERS[config["name"]](size, n_weights, dtype, config)
