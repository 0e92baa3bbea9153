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
            diff = self._scratch.get(P.shape)
            if diff is None:
                diff = self._scratch[P.shape] = np.empty_like(P)
            np.subtract(P, Y, out=diff)
            flat = diff.reshape(-1)
            if k == 1:
                self._sq += float(np.dot(flat, flat))
            else:
                self._sq = self._sq + np.einsum("ij,ij->j", diff, diff)
            self._abs += float(np.add.reduce(np.abs(flat, out=flat))) / k

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
