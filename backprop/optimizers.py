"""Optimizers and learning-rate schedules.

An optimizer updates one flat parameter buffer from one flat gradient buffer (every layer's
``W`` and ``b`` are views into them), so an update is a handful of in-place ufuncs over all
parameters at once, split over the cores for large networks (``backprop.elementwise``: the
same bytes with any split). Moment buffers are allocated once; ``state()`` / ``load_state()``
carry them through checkpoints.
"""

import math

import numpy as np

from .elementwise import Split
from .exceptions import SpecError
from .hyperparameters import Hyperparameter


class Schedule:
    """A learning-rate schedule, per epoch; subclasses declare their ``hyperparameters``."""

    name = ""
    hyperparameters: dict[str, Hyperparameter] = {}

    @staticmethod
    def rate(base: float, schedule: dict, epoch: int) -> float:
        raise NotImplementedError


class Constant(Schedule):
    """base."""

    name = "constant"

    @staticmethod
    def rate(base, schedule, epoch):
        return base


# gamma in (0, 1]: the factor the rate is multiplied by.
GAMMA = Hyperparameter(0.5, low=0.0, high=1.0, low_open=True)


class Step(Schedule):
    """base·gamma^⌊epoch/step_size⌋."""

    name = "step"
    hyperparameters = {"gamma": GAMMA, "step_size": Hyperparameter(10, low=1)}

    @staticmethod
    def rate(base, schedule, epoch):
        return base * schedule["gamma"] ** (epoch // schedule["step_size"])


class Exponential(Schedule):
    """base·gamma^epoch."""

    name = "exponential"
    hyperparameters = {"gamma": GAMMA}

    @staticmethod
    def rate(base, schedule, epoch):
        return base * schedule["gamma"] ** epoch


class InverseTime(Schedule):
    """base / (1 + decay·epoch)."""

    name = "inverse_time"
    hyperparameters = {"decay": Hyperparameter(0.01, low=0.0)}

    @staticmethod
    def rate(base, schedule, epoch):
        return base / (1.0 + schedule["decay"] * epoch)


SCHEDULES = {cls.name: cls for cls in (Constant, Step, Exponential, InverseTime)}


def schedule_lr(base: float, schedule: dict, epoch: int) -> float:
    """Learning rate for a 0-based ``epoch`` under a normalised ``schedule``."""
    return SCHEDULES[schedule["name"]].rate(base, schedule, epoch)


# The most any optimizer's learning_rate may be: larger rates only diverge.
MAX_LEARNING_RATE = 10.0


def learning_rate(default: float) -> Hyperparameter:
    return Hyperparameter(default, low=0.0, high=MAX_LEARNING_RATE, low_open=True)


def decay_rate(default: float) -> Hyperparameter:
    """A moving average's decay (momentum, beta_1, beta_2, rho): in [0, 1), since 1 would
    never let the average move."""
    return Hyperparameter(default, low=0.0, high=1.0, high_open=True)


def epsilon(default: float) -> Hyperparameter:
    return Hyperparameter(default, low=0.0, low_open=True)


WEIGHT_DECAY = Hyperparameter(0.0, low=0.0)  # L2 on weights, every optimizer


class Optimizer:
    """Base class. Each subclass declares its ``hyperparameters`` (defaults and bounds), which
    ``normalize`` checks a spec against and the API's schema is derived from.

    Args:
        size: number of parameters in the flat buffer.
        n_weights: the first ``n_weights`` entries are weights (biases follow); L2 weight
            decay applies to weights only.
        dtype: the parameters' dtype.
        config: the normalised optimizer spec (see ``normalize``).
    """

    name = ""
    slots: tuple[str, ...] = ()
    hyperparameters: dict[str, Hyperparameter] = {}

    def __init__(self, size: int, n_weights: int, dtype, config: dict):
        self.config = config
        self.weight_decay = config["weight_decay"]
        self.n_weights = n_weights
        self.t = 0
        self._tmp = np.zeros(size, dtype)
        for slot in self.slots:
            setattr(self, slot, np.zeros(size, dtype))
        self._split = None

    @classmethod
    def normalize(cls, config: dict, path: str) -> dict:
        """``{"name", hyperparameter: value, ...}`` with every default filled in.

        Raises:
            SpecError: naming the path of the first value out of bounds.
        """
        out = {"name": cls.name}
        for key, hyperparameter in cls.hyperparameters.items():
            out[key] = hyperparameter.value(config.get(key), f"{path}.{key}")
        return out

    def step(self, params, grads, lr: float):
        """Apply one update in place, at learning rate ``lr`` (the schedule's, this epoch).

        Args:
            params: ndarray of shape (n_params,).
            grads: ndarray of shape (n_params,); overwritten when weight decay is on.
        """
        self.t += 1
        if self.weight_decay:
            w = slice(0, self.n_weights)
            np.multiply(params[w], self.weight_decay, out=self._tmp[w])
            grads[w] += self._tmp[w]
        if self._split is None or self._split[0] is not params or self._split[1] is not grads:
            buffers = [params, grads, self._tmp]
            buffers += [getattr(self, slot) for slot in self.slots]
            self._split = (params, grads, Split(buffers))
        self._split[2].run(self._update, lr)

    def _update(self, lr: float, params, grads, tmp, *slots):
        """The update of one piece of the buffers: every argument after ``lr`` is a view of the
        same elements of params, grads, a scratch buffer and each of ``slots`` in order."""
        raise NotImplementedError

    @staticmethod
    def _scaled_step(lr: float, eps: float, params, grads, accumulator, tmp) -> None:
        """p ← p − lr·g/(√accumulator + ε): RMSprop's and Adagrad's step, one ufunc order so
        both keep their bytes; ``tmp`` is overwritten."""
        np.sqrt(accumulator, out=tmp)
        tmp += eps
        np.divide(grads, tmp, out=tmp)
        tmp *= lr
        params -= tmp

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
    hyperparameters = {
        "learning_rate": learning_rate(0.01),
        "weight_decay": WEIGHT_DECAY,
        "momentum": decay_rate(0.0),
        "nesterov": Hyperparameter(False),
    }

    def __init__(self, size, n_weights, dtype, config):
        self.momentum = config["momentum"]
        self.nesterov = config["nesterov"]
        self.slots = ("velocity",) if self.momentum else ()
        super().__init__(size, n_weights, dtype, config)

    @classmethod
    def normalize(cls, config: dict, path: str) -> dict:
        out = super().normalize(config, path)
        if out["nesterov"] and not out["momentum"] > 0:
            raise SpecError(f"{path}.nesterov", "needs momentum > 0")
        return out

    def _update(self, lr, params, grads, tmp, v=None):
        np.multiply(grads, lr, out=tmp)
        if not self.momentum:
            params -= tmp
            return
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

    The slots hold the moments divided by (1−β), m' = m/(1−β₁) and v' = v/(1−β₂), so that
    m' ← β₁m' + g and v' ← β₂v' + g² skip a scaling pass each; that factor and the bias
    corrections are folded into the step size and ε: the same update in 10 passes over the
    parameters instead of 12.
    """

    name = "adam"
    slots = ("m", "v")
    hyperparameters = {
        "learning_rate": learning_rate(0.001),
        "weight_decay": WEIGHT_DECAY,
        "beta_1": decay_rate(0.9),
        "beta_2": decay_rate(0.999),
        "epsilon": epsilon(1e-8),
    }

    def __init__(self, size, n_weights, dtype, config):
        self.beta_1, self.beta_2 = config["beta_1"], config["beta_2"]
        self.epsilon = config["epsilon"]
        super().__init__(size, n_weights, dtype, config)

    def _update(self, lr, params, grads, tmp, m, v):
        b1, b2, t = self.beta_1, self.beta_2, self.t
        m *= b1
        m += grads
        np.multiply(grads, grads, out=tmp)
        v *= b2
        v += tmp
        # m̂/(√v̂ + ε) = (1−β₁)/(1−β₁ᵗ)/k · m'/(√v' + ε/k), with k = √((1−β₂)/(1−β₂ᵗ)).
        k = math.sqrt((1.0 - b2) / (1.0 - b2**t))
        np.sqrt(v, out=tmp)
        tmp += self.epsilon / k
        np.divide(m, tmp, out=tmp)
        tmp *= lr * (1.0 - b1) / ((1.0 - b1**t) * k)
        params -= tmp


class RMSprop(Optimizer):
    """v ← ρv + (1−ρ)g², p ← p − lr·g/(√v + ε)."""

    name = "rmsprop"
    slots = ("v",)
    hyperparameters = {
        "learning_rate": learning_rate(0.001),
        "weight_decay": WEIGHT_DECAY,
        "rho": decay_rate(0.9),
        "epsilon": epsilon(1e-7),
    }

    def __init__(self, size, n_weights, dtype, config):
        self.rho, self.epsilon = config["rho"], config["epsilon"]
        super().__init__(size, n_weights, dtype, config)

    def _update(self, lr, params, grads, tmp, v):
        np.multiply(grads, grads, out=tmp)
        tmp -= v
        tmp *= 1.0 - self.rho
        v += tmp
        self._scaled_step(lr, self.epsilon, params, grads, v, tmp)


class Adagrad(Optimizer):
    """G ← G + g², p ← p − lr·g/(√G + ε)."""

    name = "adagrad"
    slots = ("accumulator",)
    hyperparameters = {
        "learning_rate": learning_rate(0.01),
        "weight_decay": WEIGHT_DECAY,
        "epsilon": epsilon(1e-7),
    }

    def __init__(self, size, n_weights, dtype, config):
        self.epsilon = config["epsilon"]
        super().__init__(size, n_weights, dtype, config)

    def _update(self, lr, params, grads, tmp, acc):
        np.multiply(grads, grads, out=tmp)
        acc += tmp
        self._scaled_step(lr, self.epsilon, params, grads, acc, tmp)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, RMSprop, Adagrad)}


def get_optimizer(size: int, n_weights: int, dtype, config: dict) -> Optimizer:
    """Build the optimizer a normalised optimizer spec names."""
    return OPTIMIZERS[config["name"]](size, n_weights, dtype, config)
