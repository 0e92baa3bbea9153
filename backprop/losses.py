"""Loss functions.

``forward_backward(P, Y, Z, out)`` returns the batch loss summed over samples and writes into
``out`` the gradient of the batch's *reduced* loss: with respect to the prediction ``P``, or,
for the two fused pairs (sigmoid + binary cross-entropy, softmax + categorical cross-entropy),
with respect to the output layer's logits ``Z``. The fused pairs live here and nowhere else.
"""

import numpy as np


class Loss:
    """Base class.

    Attributes:
        name: the spec's name for the loss.
        reduction: ``"sum"`` when the epoch loss is the sum over samples (the article's sse),
            ``"mean"`` when it is the mean over samples.
        fused_activation: the output activation whose gradient this loss folds in, or None.
    """

    name = ""
    reduction = "mean"
    fused_activation = None

    def forward_backward(self, P, Y, Z, out):
        """Loss and gradient for one batch.

        Args:
            P: ndarray of shape (n_samples, n_outputs), the network's output.
            Y: ndarray of the same shape, the targets.
            Z: ndarray of the same shape, the output logits (read by fused losses only).
            out: ndarray of the same shape for the gradient.

        Returns:
            The sum over samples of the per-sample loss, as a float.
        """
        raise NotImplementedError

    def value(self, P, Y, Z):
        """The summed per-sample loss, without keeping the gradient."""
        return self.forward_backward(P, Y, Z, np.empty_like(P))


class SSE(Loss):
    """½·Σ(y − p)², the article's loss; its gradient is p − y."""

    name = "sse"
    reduction = "sum"

    def forward_backward(self, P, Y, Z, out):
        np.subtract(P, Y, out=out)
        flat = out.reshape(-1)
        return 0.5 * float(np.dot(flat, flat))


class MSE(Loss):
    """Mean over outputs of (y − p)², averaged over samples."""

    name = "mse"

    def forward_backward(self, P, Y, Z, out):
        n, k = P.shape
        np.subtract(P, Y, out=out)
        flat = out.reshape(-1)
        total = float(np.dot(flat, flat)) / k
        out *= 2.0 / (n * k)
        return total


class MAE(Loss):
    """Mean over outputs of |y − p|, averaged over samples."""

    name = "mae"

    def forward_backward(self, P, Y, Z, out):
        n, k = P.shape
        np.subtract(P, Y, out=out)
        total = float(np.abs(out).sum()) / k
        np.sign(out, out=out)
        out *= 1.0 / (n * k)
        return total


class Huber(Loss):
    """Quadratic within ``delta`` of the target, linear beyond it."""

    name = "huber"

    def __init__(self, delta: float = 1.0):
        if not delta > 0:
            raise ValueError("delta must be > 0")
        self.delta = float(delta)

    def forward_backward(self, P, Y, Z, out):
        n, k = P.shape
        np.subtract(P, Y, out=out)
        absd = np.abs(out)
        quad = np.minimum(absd, self.delta)
        total = float(0.5 * np.dot(quad.ravel(), quad.ravel()) + self.delta * (absd - quad).sum())
        np.clip(out, -self.delta, self.delta, out=out)
        out *= 1.0 / (n * k)
        return total / k


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of sigmoid outputs, computed from the logits.

    Per element: max(z, 0) − z·y + log(1 + exp(−|z|)), which never takes log(0).
    The gradient with respect to z is p − y.
    """

    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def forward_backward(self, P, Y, Z, out):
        n, k = P.shape
        np.abs(Z, out=out)
        np.negative(out, out=out)
        np.exp(out, out=out)
        np.log1p(out, out=out)
        out += np.maximum(Z, 0.0)
        total = float(out.sum() - np.dot(Z.ravel(), Y.ravel())) / k
        np.subtract(P, Y, out=out)
        out *= 1.0 / (n * k)
        return total


class CategoricalCrossentropy(Loss):
    """Categorical cross-entropy of softmax outputs, computed from the logits.

    Per sample: Σ_j y_j·(logsumexp(z) − z_j). The gradient with respect to z is p − y when
    each target row sums to one.
    """

    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def forward_backward(self, P, Y, Z, out):
        n = P.shape[0]
        row = Z.max(axis=1, keepdims=True)
        np.subtract(Z, row, out=out)
        np.exp(out, out=out)
        lse = np.log(out.sum(axis=1)) + row[:, 0]
        total = float(np.dot(lse, Y.sum(axis=1)) - np.dot(Z.ravel(), Y.ravel()))
        np.subtract(P, Y, out=out)
        out *= 1.0 / n
        return total


LOSSES = {
    cls.name: cls for cls in (SSE, MSE, MAE, Huber, BinaryCrossentropy, CategoricalCrossentropy)
}
CLASSIFICATION_LOSSES = frozenset({"binary_crossentropy", "categorical_crossentropy"})


def get_loss(training: dict) -> Loss:
    """Build the loss named by a normalised training spec."""
    if training["loss"] == "huber":
        return Huber(training.get("huber_delta", 1.0))
    return LOSSES[training["loss"]]()
