"""Per-epoch metrics, accumulated batch by batch from the predictions training already made."""

import numpy as np

# The per-epoch metrics ``EpochMetrics.result`` reports, by ``metric_kind``.
METRIC_NAMES = {"softmax": ("accuracy",), "binary": ("accuracy",), "regression": ("mae", "r2")}


class EpochMetrics:
    """Accuracy for classifiers; mae and r2 for regression.

    Args:
        kind: ``"softmax"`` (argmax accuracy), ``"binary"`` (0.5-threshold accuracy per output)
            or ``"regression"``.
        Y: ndarray of shape (n_samples, n_outputs), the whole set the batches come from (r2
            needs its column variances).
    """

    def __init__(self, kind: str, Y):
        self.kind = kind
        self._Y = Y
        self._scratch = {}
        if kind == "regression":
            ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
            # Columns with no variance have no r2; the mean runs over the others.
            self._inv_ss_tot = np.where(ss_tot > 0, 1.0 / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)
            self._r2_columns = int(np.count_nonzero(ss_tot > 0))
            if Y.shape[1] == 1:
                self._inv_ss_tot = float(self._inv_ss_tot[0])
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._hits = 0.0
        self._abs = 0.0
        self._sq = 0.0

    def update(self, P, Y) -> None:
        """Add one batch: P and Y of shape (n_batch, n_outputs)."""
        n, k = P.shape
        self._n += n
        if self.kind == "softmax":
            self._hits += np.count_nonzero(P.argmax(axis=1) == Y.argmax(axis=1))
        elif self.kind == "binary":
            self._hits += np.count_nonzero((P >= 0.5) == (Y >= 0.5)) / k
        else:
            buffers = self._scratch.get(P.shape)
            if buffers is None:
                buffers = self._scratch[P.shape] = np.empty((2, 1, *P.shape), P.dtype)
            diff, squares = buffers
            np.subtract(P, Y, out=diff[0])
            sq, absolute = regression_sums(diff, squares)
            self._sq = self._sq + (float(sq[0]) if k == 1 else sq[0])
            self._abs += float(absolute[0]) / k

    def epoch_results(self, P) -> list[dict]:
        """``result()`` of each epoch of a block of full-batch predictions, at once.

        Args:
            P: ndarray of shape (n_epochs, n_samples, n_outputs): each epoch's predictions of
                the whole set ``Y`` given to the constructor.

        Returns:
            One dict per epoch, the same numbers, bit for bit, as ``reset``, ``update(P[i], Y)``
            and ``result`` would give (the reductions run row by row, whatever the block's size).
        """
        m, n, k = P.shape
        Y = self._Y
        if self.kind == "softmax":
            hits = np.count_nonzero(P.argmax(axis=2) == Y.argmax(axis=1), axis=1)
            return [{"accuracy": int(h) / n} for h in hits]
        if self.kind == "binary":
            hits = np.count_nonzero((P >= 0.5) == (Y >= 0.5), axis=(1, 2))
            return [{"accuracy": (int(h) / k) / n} for h in hits]
        sq, absolute = regression_sums(P - Y)
        results = []
        for i in range(m):
            self.reset()
            self._n, self._abs = n, float(absolute[i]) / k
            self._sq = float(sq[i]) if k == 1 else sq[i]
            results.append(self.result())
        return results

    def result(self) -> dict:
        """The metrics of everything added since ``reset``."""
        if self.kind != "regression":
            return {"accuracy": self._hits / self._n}
        cols = self._r2_columns
        if isinstance(self._sq, float):
            explained = self._sq * self._inv_ss_tot
        else:
            explained = float(np.dot(self._sq, self._inv_ss_tot))
        r2 = (cols - explained) / cols if cols else 0.0
        return {"mae": self._abs / self._n, "r2": r2}


def metric_kind(network_spec: dict, loss: str) -> str:
    """Which metrics a network and loss call for."""
    output = network_spec["layers"][-1]["activation"]
    if output == "softmax":
        return "softmax"
    if loss == "binary_crossentropy":
        return "binary"
    return "regression"


def higher_is_better(metric: str) -> bool:
    return metric.removeprefix("val_") in ("accuracy", "r2")


def regression_sums(diff, squares=None):
    """Per-epoch sums of squared errors and of absolute errors.

    Args:
        diff: ndarray of shape (n_epochs, n_samples, n_outputs), predictions minus targets; its
            contents are overwritten.
        squares: scratch of diff's shape for the squares (a new array when None): per batch,
            ``EpochMetrics.update`` passes its own, so nothing is allocated.

    Returns:
        ``(sq, abs)``: sq of shape (n_epochs,) for one output, else (n_epochs, n_outputs)
        (per column, for r2); abs of shape (n_epochs,). Each row's sums are plain pairwise
        reductions of that row alone, so one epoch gives the same bits alone or in a block.
    """
    m, n, k = diff.shape
    squares = np.multiply(diff, diff, out=squares)
    sq = np.add.reduce(squares.reshape(m, n), axis=1) if k == 1 else np.add.reduce(squares, axis=1)
    flat = diff.reshape(m, n * k)
    return sq, np.add.reduce(np.abs(flat, out=flat), axis=1)
