"""A multilayer perceptron over one flat parameter buffer."""

import numpy as np

from .activations import get_activation
from .layers import Buffers, Dense


class Network:
    """A stack of Dense layers whose parameters live in one flat buffer.

    The buffer holds every layer's W first, then every layer's b, so weight decay (weights
    only) is one contiguous slice and an optimizer step is a few ufuncs over all parameters.

    Args:
        n_inputs: width of the input.
        layers: ``[{"units": int, "activation": str, "alpha"?: float}, ...]``.
        dtype: ``numpy.float64`` or ``numpy.float32``.
        parameters: ``[(W, b), ...]`` initial values, one pair per layer.
        keep_logits: keep the output layer's logits apart from its activations (fused losses
            read them).
    """

    def __init__(self, n_inputs: int, layers: list[dict], dtype, parameters, keep_logits=False):
        self.dtype = np.dtype(dtype)
        self.sizes = [n_inputs] + [layer["units"] for layer in layers]
        pairs = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        self.n_weights = sum(i * o for i, o in pairs)
        self.n_params = self.n_weights + sum(o for _, o in pairs)
        self.params = np.zeros(self.n_params, self.dtype)
        self.grads = np.zeros(self.n_params, self.dtype)
        self.keep_logits = keep_logits
        self.layers = []
        w_at, b_at = 0, self.n_weights
        for (n_in, n_out), config in zip(pairs, layers, strict=True):
            w, b = slice(w_at, w_at + n_in * n_out), slice(b_at, b_at + n_out)
            self.layers.append(
                Dense(
                    self.params[w].reshape(n_in, n_out),
                    self.params[b],
                    self.grads[w].reshape(n_in, n_out),
                    self.grads[b],
                    get_activation(config),
                )
            )
            w_at, b_at = w.stop, b.stop
        self.set_parameters(parameters)
        self._workspaces = {}

    @property
    def n_inputs(self) -> int:
        return self.sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.sizes[-1]

    def set_parameters(self, parameters) -> None:
        """Copy ``[(W, b), ...]`` into the flat buffer, casting to this network's dtype."""
        for layer, (W, b) in zip(self.layers, parameters, strict=True):
            np.copyto(layer.W, np.asarray(W).reshape(layer.W.shape), casting="same_kind")
            np.copyto(layer.b, np.asarray(b).reshape(layer.b.shape), casting="same_kind")

    def parameters(self) -> list[tuple]:
        """``[(W, b), ...]`` as copies."""
        return [(layer.W.copy(), layer.b.copy()) for layer in self.layers]

    def _workspace(self, n: int) -> list[dict]:
        ws = self._workspaces.get(n)
        if ws is None:
            last = len(self.layers) - 1
            ws = [
                Buffers((n, layer.n_out), self.dtype, self.keep_logits and i == last)
                for i, layer in enumerate(self.layers)
            ]
            self._workspaces[n] = ws
        return ws

    def forward(self, X):
        """Training forward pass.

        Args:
            X: ndarray of shape (n_samples, n_inputs) in this network's dtype.

        Returns:
            (P, Z, dP): the output, the output logits (P itself unless ``keep_logits``), and
            the workspace array that ``backward`` expects the loss gradient in. All three are
            reused by the next call with the same number of samples.
        """
        ws = self._workspace(X.shape[0])
        A = X
        for layer, buffers in zip(self.layers, ws, strict=True):
            A = layer.forward(A, buffers)
        self._ws = ws
        last = ws[-1]
        return A, last.Z, last.dA

    def backward(self, fused=False) -> None:
        """Fill ``grads`` from the loss gradient the caller wrote into ``dP`` (see forward)."""
        ws = self._ws
        i = len(self.layers) - 1
        self.layers[i].backward(ws[i].dA, ws[i - 1].dA if i else None, fused)
        while i > 0:
            i -= 1
            self.layers[i].backward(ws[i].dA, ws[i - 1].dA if i else None)

    # exp overflow in a saturated sigmoid rounds to the right 0 or 1; inputs so large that the
    # outputs overflow give inf/nan, which callers check for (the API answers 422).
    @np.errstate(over="ignore", invalid="ignore")
    def predict(self, X, logits=False):
        """Outputs for ``X`` in fresh arrays.

        Args:
            X: array-like of shape (n_samples, n_inputs).
            logits: also return the output layer's pre-activation.

        Returns:
            ndarray of shape (n_samples, n_outputs), or (outputs, logits) when ``logits``.
        """
        A = np.asarray(X, dtype=self.dtype)
        Z = A
        for layer in self.layers:
            Z, A = layer.predict(A)
        return (A, Z) if logits else A
