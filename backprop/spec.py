"""The plain-data spec: defaults and checks.

A spec is ``{"network": {...}, "training": {...}, "preprocessing"?: {...}, "targets"?: str,
"initial_weights"?: [...], "initial_model_id"?: str, "keep_preprocessing"?: bool}``, the same
shape the HTTP API accepts (see ``warm_start`` for the last two). ``normalize`` fills every
default here, in one place, and raises ``SpecError`` naming the field path of the first
problem it finds.
"""

import copy
import math
from typing import NamedTuple

import numpy as np

from .activations import ACTIVATIONS
from .exceptions import SpecError
from .initializers import MAX_INIT_MAGNITUDE, SCHEMES
from .losses import LOSSES
from .metrics import METRIC_NAMES, metric_kind
from .optimizers import OPTIMIZERS, SCHEDULES
from .preprocessing import TARGETS, Preprocessor, check_classes, class_labels, target_columns
from .warm_start import normalize as warm_start_fields

DTYPES = ("float64", "float32")
# The article's U[0,1) and N(0,1) draw biases too; the variance-scaling schemes use zeros.
DRAWN_BIAS_SCHEMES = ("uniform", "normal")
FUSED_OUTPUTS = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax"}
ROW_SUM_TOLERANCE = 1e-6  # categorical_crossentropy targets: how far from 1 a row may sum


def _require(cond: bool, path: str, message: str) -> None:
    if not cond:
        raise SpecError(path, message)


def _number(value, path: str, low=None, high=None, low_open=False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    _require(ok and math.isfinite(value), path, "must be a finite number")
    if low is not None:
        below = value <= low if low_open else value < low
        _require(not below, path, f"must be {'>' if low_open else '>='} {low}")
    if high is not None:
        _require(value <= high, path, f"must be <= {high}")
    return float(value)


def _integer(value, path: str, low: int) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    _require(ok and value >= low, path, f"must be an integer >= {low}")
    return value


def _network(net: dict) -> dict:
    layers = net.get("layers")
    _require(isinstance(layers, list) and layers, "network.layers", "must be a non-empty list")
    out_layers = []
    for i, layer in enumerate(layers):
        path = f"network.layers.{i}"
        units = _integer(layer.get("units"), f"{path}.units", 1)
        act = layer.get("activation", "linear")
        _require(act in ACTIVATIONS, f"{path}.activation", f"must be one of {sorted(ACTIVATIONS)}")
        last = i == len(layers) - 1
        _require(act != "softmax" or last, f"{path}.activation", "softmax is for the last layer")
        _require(act != "softmax" or units >= 2, f"{path}.units", "softmax needs >= 2 units")
        entry = {"units": units, "activation": act}
        for key, hyperparameter in ACTIVATIONS[act].hyperparameters.items():
            entry[key] = hyperparameter.value(layer.get(key), f"{path}.{key}")
        out_layers.append(entry)

    init = dict(net.get("init") or {"scheme": "glorot_uniform"})
    scheme = init.get("scheme", "glorot_uniform")
    _require(scheme in SCHEMES, "network.init.scheme", f"must be one of {list(SCHEMES)}")
    out_init = {"scheme": scheme}
    bound = MAX_INIT_MAGNITUDE
    if scheme == "uniform":
        out_init["low"] = _number(init.get("low", 0.0), "network.init.low", -bound, bound)
        out_init["high"] = _number(init.get("high", 1.0), "network.init.high", -bound, bound)
        _require(out_init["high"] > out_init["low"], "network.init.high", "must be > low")
    elif scheme == "normal":
        out_init["mean"] = _number(init.get("mean", 0.0), "network.init.mean", -bound, bound)
        std = init.get("std", 1.0)
        out_init["std"] = _number(std, "network.init.std", 0, bound, low_open=True)
    bias = init.get("bias", "scheme" if scheme in DRAWN_BIAS_SCHEMES else "zeros")
    _require(bias in ("zeros", "scheme"), "network.init.bias", "must be 'zeros' or 'scheme'")
    out_init["bias"] = bias

    seed = net.get("seed")
    if seed is None:
        # Record the seed actually used so that the run can be reproduced later.
        seed = int(np.random.SeedSequence().entropy % 2**32)
    _require(
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32,
        "network.seed",
        "must be an integer in [0, 2**32)",
    )
    dtype = net.get("dtype", "float64")
    _require(dtype in DTYPES, "network.dtype", f"must be one of {list(DTYPES)}")
    return {"layers": out_layers, "init": out_init, "seed": seed, "dtype": dtype}


def _optimizer(opt: dict) -> dict:
    name = opt.get("name", "sgd")
    _require(name in OPTIMIZERS, "training.optimizer.name", f"must be one of {sorted(OPTIMIZERS)}")
    path = "training.optimizer"
    out = OPTIMIZERS[name].normalize(opt, path)

    sched = dict(opt.get("schedule") or {"name": "constant"})
    sname = sched.get("name", "constant")
    _require(sname in SCHEDULES, f"{path}.schedule.name", f"must be one of {list(SCHEDULES)}")
    out_sched = {"name": sname}
    for key, hyperparameter in SCHEDULES[sname].hyperparameters.items():
        out_sched[key] = hyperparameter.value(sched.get(key), f"{path}.schedule.{key}")
    out["schedule"] = out_sched
    return out


def _training(tr: dict, layers: list[dict]) -> dict:
    loss = tr.get("loss")
    _require(loss in LOSSES, "training.loss", f"must be one of {sorted(LOSSES)}")
    output = layers[-1]["activation"]
    needed = FUSED_OUTPUTS.get(loss)
    _require(
        needed is None or output == needed,
        "training.loss",
        f"{loss} needs a {needed} output layer, not {output}",
    )
    out = {"loss": loss}
    if loss == "huber":
        delta = tr.get("huber_delta", 1.0)
        out["huber_delta"] = _number(delta, "training.huber_delta", 0, low_open=True)
    out["optimizer"] = _optimizer(dict(tr.get("optimizer") or {}))
    out["epochs"] = _integer(tr.get("epochs", 100), "training.epochs", 1)
    batch = tr.get("batch_size", 32)
    out["batch_size"] = None if batch is None else _integer(batch, "training.batch_size", 1)
    out["shuffle"] = bool(tr.get("shuffle", True))

    val = tr.get("validation")
    if val is not None:
        if "fraction" in val:
            frac = _number(val["fraction"], "training.validation.fraction", 0, 1, True)
            _require(frac < 1, "training.validation.fraction", "must be < 1")
            val = {"fraction": frac}
        else:
            val = {"data": True}  # explicit arrays travel beside the spec, not inside it
    out["validation"] = val

    es = tr.get("early_stopping")
    if es is not None:
        monitor = es.get("monitor", "val_loss" if val else "loss")
        names = ("loss", *METRIC_NAMES[metric_kind({"layers": layers}, loss)])
        monitors = [*names, *(f"val_{name}" for name in names)]
        path = "training.early_stopping.monitor"
        _require(monitor in monitors, path, f"must be one of {monitors}")
        _require(
            not monitor.startswith("val_") or val is not None,
            path,
            f"{monitor} needs a validation set",
        )
        es = {
            "monitor": monitor,
            "patience": _integer(es.get("patience", 10), "training.early_stopping.patience", 0),
            "min_delta": _number(es.get("min_delta", 0.0), "training.early_stopping.min_delta", 0),
            "restore_best": bool(es.get("restore_best", True)),
        }
    out["early_stopping"] = es
    return out


def _preprocessing(pre) -> dict:
    pre = {} if pre is None else pre
    _require(isinstance(pre, dict), "preprocessing", "must be an object")
    standardize = pre.get("standardize", False)
    _require(isinstance(standardize, bool), "preprocessing.standardize", "must be true or false")
    return {"standardize": standardize}


def _targets(targets, layers: list[dict]) -> str:
    _require(targets in TARGETS, "targets", f"must be one of {list(TARGETS)}")
    _require(
        targets != "classes" or layers[-1]["activation"] == "softmax",
        "targets",
        "'classes' needs a softmax output layer",
    )
    return targets


def normalize(spec: dict) -> dict:
    """A deep copy of ``spec`` with every default filled in.

    Raises:
        SpecError: naming the path of the first invalid field.
    """
    _require(isinstance(spec, dict), "spec", "must be an object")
    spec = copy.deepcopy(spec)
    network = _network(dict(spec.get("network") or {}))
    out = {
        "network": network,
        "training": _training(dict(spec.get("training") or {}), network["layers"]),
        "preprocessing": _preprocessing(spec.get("preprocessing")),
        "targets": _targets(spec.get("targets", "values"), network["layers"]),
    }
    if spec.get("initial_weights") is not None:
        out["initial_weights"] = spec["initial_weights"]
    out.update(warm_start_fields(spec))
    return out


def validation_rows(n_samples: int, fraction: float) -> int:
    """How many of ``n_samples`` rows ``training.validation.fraction`` holds out: at least
    one, and never every row.

    Raises:
        SpecError: naming the fraction when the split would leave no training row.
    """
    n_val = max(1, int(round(n_samples * fraction)))
    if n_val >= n_samples:
        raise SpecError(
            "training.validation.fraction",
            f"holds out {n_val} of the {n_samples} rows and leaves none to train on; "
            f"give at least 2 rows",
        )
    return n_val


def as_dtype(array, dtype, path: str) -> np.ndarray:
    """``array`` as a C-contiguous array of ``dtype``, after checking every value is finite in
    it (a float64 1e39 is infinite as float32).

    Raises:
        SpecError: naming ``path`` and the position of the first value that is not.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(array, dtype=dtype)
    if not np.isfinite(out).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        value = np.asarray(array)[index]
        where = f"the value at {list(index)}"
        if np.isfinite(value):
            raise SpecError(path, f"{where}, {float(value):.6g}, is out of range for {out.dtype}")
        raise SpecError(path, f"{where} is {value}, not a finite number")
    return out


def check_initial_weights(weights: list, sizes: list[int], dtype="float64") -> list[tuple]:
    """``[{"W", "b"}, ...]`` as float64 arrays, after checking shapes against ``sizes`` and
    that every value is finite in the network's ``dtype``."""
    _require(
        isinstance(weights, list) and len(weights) == len(sizes) - 1,
        "initial_weights",
        f"must list {len(sizes) - 1} layers",
    )
    out = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        entry = weights[i]
        W = np.asarray(entry["W"], dtype=np.float64)
        b = np.asarray(entry["b"], dtype=np.float64).reshape(-1)
        _require(W.shape == (n_in, n_out), f"initial_weights.{i}.W", f"must be {n_in}x{n_out}")
        _require(b.shape == (n_out,), f"initial_weights.{i}.b", f"must have {n_out} values")
        as_dtype(W, dtype, f"initial_weights.{i}.W")
        as_dtype(b, dtype, f"initial_weights.{i}.b")
        out.append((W, b))
    return out


def check_data(
    X, y, n_outputs: int, path: str = "data", labels: bool = False, loss: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """X and y as 2-D float64 arrays, after checking shapes, finiteness and, given the
    ``loss``, that y holds what that loss can take (see ``check_targets``).

    A 1-D ``y`` becomes one column. With ``labels`` (``targets: "classes"``), y must be one
    column of class labels whatever ``n_outputs`` is; they are one-hot encoded later.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    _require(
        X.ndim == 2 and X.shape[0] > 0 and X.shape[1] > 0,
        f"{path}.X",
        "must be a non-empty 2-D array",
    )
    _require(y.ndim == 2, f"{path}.y", "must be a 2-D array")
    _require(y.shape[0] == X.shape[0], f"{path}.y", f"has {y.shape[0]} rows, X has {X.shape[0]}")
    if labels:
        _require(y.shape[1] == 1, f"{path}.y", "must be one column of class labels")
    else:
        _require(
            y.shape[1] == n_outputs,
            f"{path}.y",
            f"must have {n_outputs} columns, one per output unit",
        )
    _require(bool(np.isfinite(X).all()), f"{path}.X", "must be finite")
    _require(bool(np.isfinite(y).all()), f"{path}.y", "must be finite")
    if not labels:
        check_targets(y, loss, f"{path}.y")
    return X, y


def check_targets(y: np.ndarray, loss: str | None, path: str) -> None:
    """Cross-entropy is a loss between probabilities: binary_crossentropy needs y in [0, 1],
    categorical_crossentropy rows of y that are distributions (>= 0, summing to 1).

    Args:
        y: finite ndarray of shape (n_samples, n_outputs).
    """
    if loss == "binary_crossentropy":
        _require(
            bool(y.min() >= 0 and y.max() <= 1),
            path,
            "must be within [0, 1] for binary_crossentropy",
        )
    elif loss == "categorical_crossentropy":
        bad = (y < 0).any(axis=1) | (np.abs(y.sum(axis=1) - 1) > ROW_SUM_TOLERANCE)
        if bad.any():
            row = int(np.argmax(bad))
            raise SpecError(
                path,
                f"each row must be a probability distribution (one-hot): values >= 0 that sum "
                f"to 1; row {row} does not",
            )


def check_dtype_range(spec: dict, X, y, path: str = "data") -> None:
    """X and y of a normalised spec must be finite in its network dtype once preprocessed.

    Standardised inputs are scaled in float64 first, and class labels are one-hot encoded,
    so only raw values that reach the network as they are can overflow its dtype.

    Raises:
        SpecError: naming ``{path}.X`` or ``{path}.y``.
    """
    dtype = spec["network"]["dtype"]
    if not spec["preprocessing"]["standardize"]:
        as_dtype(X, dtype, f"{path}.X")
    if spec["targets"] != "classes":
        as_dtype(y, dtype, f"{path}.y")


def data_shape(spec: dict, X, y) -> dict:
    """``{rows, columns, outputs, classes}`` of training data, checked against a normalised
    spec: the same keys a stored dataset's record has, for ``check_job_data``.

    Raises:
        SpecError: naming ``data.X`` or ``data.y``.
    """
    labels = spec["targets"] == "classes"
    n_outputs, loss = spec["network"]["layers"][-1]["units"], spec["training"]["loss"]
    X, y = check_data(X, y, n_outputs, labels=labels, loss=loss)
    check_dtype_range(spec, X, y)
    classes = class_labels(y).tolist() if labels else None
    return {"rows": X.shape[0], "columns": X.shape[1], "outputs": y.shape[1], "classes": classes}


class JobData(NamedTuple):
    """What ``check_job_data`` checked: the validation arrays as float64 ``(X_val, y_val)``
    (None without explicit ones) and the initial weights as ``[(W, b), ...]`` (or None)."""

    validation: tuple[np.ndarray, np.ndarray] | None
    initial_weights: list[tuple] | None


def check_job_data(spec: dict, shape: dict, validation=None, source: str = "data") -> JobData:
    """Check a normalised spec, its explicit validation set and its initial weights against
    the shape of its training data (see ``data_shape``): the API at submit, the engine before
    it trains, with the same rules and messages.

    Args:
        validation: ``(X_val, y_val)`` array-likes, or None.
        source: the field the training data comes from, ``data`` or ``dataset_id``.

    Raises:
        SpecError: naming the field at fault.
    """
    layers = spec["network"]["layers"]
    width = target_columns(spec)
    y_path = "data.y" if source == "data" else source
    if shape["outputs"] != width:
        raise SpecError(y_path, f"has {shape['outputs']} target columns; the job needs {width}")
    classes = None
    if spec["targets"] == "classes":
        classes = shape.get("classes")
        if classes is None:
            raise SpecError(y_path, "must be one column of integer class labels")
        check_classes(classes, layers)
    fraction = (spec["training"]["validation"] or {}).get("fraction")
    if fraction is not None:
        validation_rows(shape["rows"], fraction)
    if validation is not None:
        labels = spec["targets"] == "classes"
        loss = spec["training"]["loss"]
        path = "training.validation"
        X_val, y_val = check_data(*validation, width, path, labels, loss)
        check_dtype_range(spec, X_val, y_val, path)
        if X_val.shape[1] != shape["columns"]:
            raise SpecError("training.validation.X", "must have as many columns as data.X")
        if classes is not None:
            Preprocessor(classes=classes).encode(y_val, "training.validation.y")
        validation = (X_val, y_val)
    weights = None
    if spec.get("initial_weights") is not None:
        sizes = [shape["columns"]] + [layer["units"] for layer in layers]
        weights = check_initial_weights(spec["initial_weights"], sizes, spec["network"]["dtype"])
    return JobData(validation, weights)
