"""Activation functions.

Every activation computes its derivative from its *output* ``A`` (as the article's
``sigmoid_derivative(x) = x * (1 - x)`` does), so a layer overwrites ``Z`` with ``A`` in place
and keeps no pre-activation buffer. ``out`` may alias the input in both directions.
"""

import numpy as np

from .hyperparameters import Hyperparameter

# leaky_relu's slope and elu's scale for negative inputs.
POSITIVE = {"low": 0.0, "low_open": True}


def _copy_noting_negatives(signed, source, out):
    """Copy ``source`` into ``out`` and return the mask of ``signed < 0``, taken first so that
    ``out`` may alias ``signed``: leaky_relu and elu change only those entries."""
    mask = signed < 0.0
    if out is not source:
        np.copyto(out, source)
    return mask


class Activation:
    """Base class: ``forward(Z, out)`` and ``backward(A, dA, out)``. A subclass that takes
    numbers from the layer's spec declares them in ``hyperparameters`` (defaults and bounds),
    which ``backprop.spec`` checks and the API's schema is derived from."""

    name = ""
    hyperparameters: dict[str, Hyperparameter] = {}

    def forward(self, Z, out):
        """A = f(Z).

        Args:
            Z: ndarray of shape (n_samples, n_units).
            out: ndarray of the same shape; may be ``Z``.
        """
        raise NotImplementedError

    def backward(self, A, dA, out, scratch):
        """dZ = dA * f'(Z), written from the output A.

        Args:
            A: ndarray of shape (n_samples, n_units), this activation's output.
            dA: ndarray of the same shape, gradient of the loss with respect to A.
            out: ndarray of the same shape; may be ``dA``.
            scratch: ndarray of the same shape that the activation may overwrite.
        """
        raise NotImplementedError


class Linear(Activation):
    name = "linear"

    def forward(self, Z, out):
        if out is not Z:
            np.copyto(out, Z)
        return out

    def backward(self, A, dA, out, scratch):
        if out is not dA:
            np.copyto(out, dA)
        return out


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, Z, out):
        # 1 / (1 + exp(-z)), the article's formula, in place.
        np.negative(Z, out=out)
        np.exp(out, out=out)
        out += 1.0
        return np.reciprocal(out, out=out)

    def backward(self, A, dA, out, scratch):
        # dA * (A * (1 - A)), the article's sigmoid_derivative, in its order of operations.
        np.subtract(1.0, A, out=scratch)
        scratch *= A
        return np.multiply(dA, scratch, out=out)


class Tanh(Activation):
    name = "tanh"

    def forward(self, Z, out):
        return np.tanh(Z, out=out)

    def backward(self, A, dA, out, scratch):
        np.multiply(A, A, out=scratch)
        np.subtract(1.0, scratch, out=scratch)
        return np.multiply(dA, scratch, out=out)


class ReLU(Activation):
    name = "relu"

    def forward(self, Z, out):
        return np.maximum(Z, 0.0, out=out)

    def backward(self, A, dA, out, scratch):
        # A >= 0, so sign(A) is the 0/1 mask of Z > 0: two float passes, no boolean temporary.
        np.sign(A, out=scratch)
        return np.multiply(dA, scratch, out=out)


class LeakyReLU(Activation):
    name = "leaky_relu"
    hyperparameters = {"alpha": Hyperparameter(0.01, **POSITIVE)}

    def __init__(self, alpha: float | None = None):
        self.alpha = self.hyperparameters["alpha"].value(alpha, "alpha")

    def forward(self, Z, out):
        mask = _copy_noting_negatives(Z, Z, out)
        np.multiply(out, self.alpha, out=out, where=mask)
        return out

    def backward(self, A, dA, out, scratch):
        mask = _copy_noting_negatives(A, dA, out)
        np.multiply(out, self.alpha, out=out, where=mask)
        return out


class ELU(Activation):
    name = "elu"
    hyperparameters = {"alpha": Hyperparameter(1.0, **POSITIVE)}

    def __init__(self, alpha: float | None = None):
        self.alpha = self.hyperparameters["alpha"].value(alpha, "alpha")

    def forward(self, Z, out):
        mask = _copy_noting_negatives(Z, Z, out)
        neg = np.expm1(out[mask])
        neg *= self.alpha
        out[mask] = neg
        return out

    def backward(self, A, dA, out, scratch):
        # f'(z) = 1 for z > 0, alpha * exp(z) = A + alpha otherwise.
        mask = _copy_noting_negatives(A, dA, out)
        out[mask] *= A[mask] + self.alpha
        return out


class Softmax(Activation):
    """Row-wise softmax; only valid on the output layer."""

    name = "softmax"

    def forward(self, Z, out):
        row = Z.max(axis=1, keepdims=True)
        np.subtract(Z, row, out=out)
        np.exp(out, out=out)
        out.sum(axis=1, keepdims=True, out=row)
        return np.divide(out, row, out=out)

    def backward(self, A, dA, out, scratch):
        # Jacobian-vector product: A * (dA - sum(dA * A, axis=1)).
        dot = np.einsum("ij,ij->i", dA, A)[:, None]
        np.subtract(dA, dot, out=out)
        return np.multiply(out, A, out=out)


ACTIVATIONS = {cls.name: cls for cls in (Linear, Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Softmax)}


def get_activation(config: dict) -> Activation:
    """Build an activation from a layer's ``{"activation": name, "alpha": ...}``."""
    cls = ACTIVATIONS[config["activation"]]
    return cls(**{key: config.get(key) for key in cls.hyperparameters})
