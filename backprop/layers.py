"""The fully connected layer."""

import numpy as np

from .activations import Activation


class Buffers:
    """One layer's scratch arrays for one batch size, each of shape (n_samples, n_out).

    ``Z`` is ``A`` itself (the activation overwrites the logits in place) unless the layer is
    the output under a fused loss, which reads the logits.
    """

    __slots__ = ("A", "Z", "dA", "scratch")

    def __init__(self, shape, dtype, keep_logits: bool):
        self.A = np.zeros(shape, dtype)
        self.Z = np.zeros(shape, dtype) if keep_logits else self.A
        self.dA = np.zeros(shape, dtype)
        self.scratch = np.zeros(shape, dtype)


class Dense:
    """A = act(X @ W + b).

    ``W``, ``b`` and their gradients ``dW``, ``db`` are views into the network's flat buffers,
    so the optimizer updates every layer in one pass. Scratch arrays come from a per-batch-size
    workspace, so the training loop allocates nothing.

    Attributes:
        W: ndarray of shape (n_in, n_out).
        b: ndarray of shape (n_out,).
        dW, db: gradients of the same shapes.
    """

    def __init__(self, W, b, dW, db, activation: Activation):
        self.W, self.b, self.dW, self.db = W, b, dW, db
        self.activation = activation
        self.n_in, self.n_out = W.shape
        self._X = None
        self._buffers = None

    def forward(self, X, buffers):
        """Forward pass that caches what backward needs.

        Args:
            X: ndarray of shape (n_samples, n_in).
            buffers: this layer's ``Buffers`` for this batch size.

        Returns:
            A: ndarray of shape (n_samples, n_out), owned by the workspace.
        """
        Z = buffers.Z
        # np.dot, not np.matmul: the same BLAS call, with a third of the overhead on tiny arrays.
        np.dot(X, self.W, out=Z)
        np.add(Z, self.b, out=Z)
        self._X, self._buffers = X, buffers
        return self.activation.forward(Z, buffers.A)

    def backward(self, dA, dX=None, fused=False):
        """Fill ``dW`` and ``db`` from the gradient at this layer's output.

        Args:
            dA: ndarray of shape (n_samples, n_out), overwritten with dZ. When ``fused``, it
                already holds dZ (the loss folded the activation's gradient in).
            dX: ndarray of shape (n_samples, n_in) to receive the gradient at the input, or
                None for the first layer, which needs none.
        """
        buffers = self._buffers
        if not fused:
            self.activation.backward(buffers.A, dA, dA, buffers.scratch)
        np.dot(self._X.T, dA, out=self.dW)
        np.add.reduce(dA, axis=0, out=self.db)
        if dX is not None:
            np.dot(dA, self.W.T, out=dX)

    def predict(self, X):
        """Forward pass into fresh arrays, safe to call from any thread.

        Args:
            X: ndarray of shape (n_samples, n_in).

        Returns:
            (Z, A): logits and activations, each of shape (n_samples, n_out).
        """
        Z = X @ self.W
        Z += self.b
        A = self.activation.forward(Z, out=np.empty_like(Z))
        return Z, A
