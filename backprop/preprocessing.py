"""Preprocessing that is fitted on the training data and kept with the model.

Two steps, both chosen in the spec: ``preprocessing.standardize`` scales every input column to
zero mean and unit variance with statistics of the training rows, and ``targets: "classes"``
reads y as one column of integer class labels, trained one-hot against a softmax output.
Both are fitted from the spec and the data alone, so a resumed run fits the same numbers.
"""

import json

import numpy as np

from .exceptions import SpecError

TARGETS = ("values", "classes")
# Labels are read as float64 (JSON numbers, CSV cells); past 2**53 two labels could merge.
MAX_LABEL = 2**53


def target_columns(spec: dict) -> int:
    """How many columns y has for a normalised spec: 1 for class labels, else one per output."""
    if spec["targets"] == "classes":
        return 1
    return spec["network"]["layers"][-1]["units"]


def _label_column(y, path: str) -> np.ndarray:
    """y as a flat float64 array of integer labels, shape (n_samples,)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] != 1:
        raise SpecError(path, "must be one column of class labels for targets 'classes'")
    column = y.reshape(-1)
    integral = np.isfinite(column).all() and (np.floor(column) == column).all()
    if not integral or (np.abs(column) >= MAX_LABEL).any():
        raise SpecError(path, "class labels must be integers (below 2**53 in magnitude)")
    return column


def class_labels(y, path: str = "data.y") -> np.ndarray:
    """The distinct labels of ``y`` in sorted order: int64 of shape (n_classes,).

    Args:
        y: integer labels of shape (n_samples,) or (n_samples, 1).

    Raises:
        SpecError: y has several columns or holds non-integers.
    """
    return np.unique(_label_column(y, path)).astype(np.int64)


def check_classes(classes, layers: list[dict]) -> None:
    """The softmax output must have one unit per class.

    Raises:
        SpecError: naming the last layer's units.
    """
    last = len(layers) - 1
    count = len(classes)
    if layers[last]["units"] != count:
        raise SpecError(
            f"network.layers.{last}.units",
            f"must be {count}, the number of classes in the data",
        )


class Preprocessor:
    """Fitted input standardisation and class encoding of one model; each may be absent.

    Args:
        mean: float64 of shape (n_inputs,), subtracted from inputs; None: no standardisation.
        scale: float64 of shape (n_inputs,), dividing the centred inputs (std, 0 read as 1).
        classes: int64 of shape (n_classes,): the label of each output unit, or None.
    """

    def __init__(self, mean=None, scale=None, classes=None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        self.classes = None if classes is None else np.asarray(classes, dtype=np.int64)

    @classmethod
    def fit(cls, spec: dict, X, classes=None) -> "Preprocessor":
        """Fit what a normalised spec asks for on the training inputs.

        Args:
            X: training inputs of shape (n_samples, n_inputs), without validation rows.
            classes: the class labels (see ``class_labels``) when ``targets`` is "classes".
        """
        mean = scale = None
        if spec["preprocessing"]["standardize"]:
            X = np.asarray(X, dtype=np.float64)
            mean = X.mean(axis=0)
            std = X.std(axis=0)
            scale = np.where(std > 0, std, 1.0)  # a constant column is centred, not scaled
        return cls(mean, scale, classes if spec["targets"] == "classes" else None)

    def transform(self, X):
        """Standardised inputs as float64, shape (n_samples, n_inputs); X itself without."""
        if self.mean is None:
            return X
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale

    def encode(self, y, path: str = "data.y"):
        """One-hot targets of shape (n_samples, n_classes) for labels; y itself without.

        Raises:
            SpecError: a label that is not one of ``classes``.
        """
        if self.classes is None:
            return y
        column = _label_column(y, path)
        index = np.searchsorted(self.classes, column)
        found = index < len(self.classes)
        found[found] = self.classes[index[found]] == column[found]
        if not found.all():
            label = int(column[~found][0])
            raise SpecError(path, f"label {label} is not one of the training data's classes")
        onehot = np.zeros((len(column), len(self.classes)))
        onehot[np.arange(len(column)), index] = 1.0
        return onehot

    def decode(self, index):
        """The labels of output units ``index`` (an int array); ``index`` itself without."""
        if self.classes is None:
            return index
        return self.classes[index]

    def state(self) -> tuple[dict, dict]:
        """``(JSON-able meta, arrays)`` that ``from_state`` turns back into this."""
        meta = {
            "standardize": self.mean is not None,
            "classes": None if self.classes is None else self.classes.tolist(),
        }
        arrays = {} if self.mean is None else {"mean": self.mean, "scale": self.scale}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict | None, arrays: dict) -> "Preprocessor":
        meta = meta or {}
        if not meta.get("standardize"):
            return cls(classes=meta.get("classes"))
        return cls(arrays["mean"], arrays["scale"], meta.get("classes"))

    def digest(self) -> bytes:
        """Bytes that change with any fitted number; empty when nothing is fitted."""
        meta, arrays = self.state()
        if not arrays and meta["classes"] is None:
            return b""
        parts = [json.dumps(meta, sort_keys=True).encode()]
        parts += [arrays[name].tobytes() for name in sorted(arrays)]
        return b"".join(parts)
