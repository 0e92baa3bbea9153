"""The training loop: batches, validation, early stopping, callbacks and checkpoints."""

import functools
import hashlib
import json
import math
import zipfile
from collections.abc import Callable

import numpy as np

from .deferred_metrics import DeferredMetrics
from .exceptions import CheckpointError, DivergenceError, SpecError
from .initializers import initial_parameters
from .losses import get_loss
from .metrics import METRIC_NAMES, EpochMetrics, higher_is_better, metric_kind
from .model import Model
from .network import Network
from .optimizers import get_optimizer, schedule_lr
from .preprocessing import Preprocessor, class_labels
from .serialization import pack, unpack
from .spec import as_dtype, check_data, check_job_data, normalize, validation_rows
from .warm_start import FIELD as WARM_START
from .warm_start import Parent
from .warm_start import check as check_warm_start

# /3: Adam's slots hold its moments divided by (1 - beta), which /2 did not.
CHECKPOINT_FORMAT = "backprop.checkpoint/3"

# callback(epoch, logs) -> truthy to stop. ``epoch`` counts completed epochs from 1.
EpochCallback = Callable[[int, dict], object]


class Trainer:
    """Trains one network on one data set.

    Args:
        spec: the plain-data spec (see ``backprop.spec``); normalised here.
        X: array-like of shape (n_samples, n_inputs).
        y: array-like of shape (n_samples, n_outputs), or (n_samples,) for one output.
        validation_data: optional ``(X_val, y_val)``; overrides ``training.validation``.
        initial_model: the ``Model`` that the spec's ``initial_model_id`` names (warm start):
            training starts from its weights, and from its fitted preprocessing unless the
            spec says ``keep_preprocessing: false``.

    Raises:
        SpecError: the spec or the data is invalid; its ``path`` names the field.
    """

    def __init__(self, spec: dict, X, y, validation_data=None, initial_model: Model | None = None):
        self.spec = normalize(spec)
        net, tr = self.spec["network"], self.spec["training"]
        n_outputs = net["layers"][-1]["units"]
        labels = self.spec["targets"] == "classes"
        X, y = check_data(X, y, n_outputs, labels=labels, loss=tr["loss"])
        # From every row, before the hold-out: the label set is not a fitted statistic.
        classes = class_labels(y, "data.y") if labels else None
        shape = {
            "rows": X.shape[0],
            "columns": X.shape[1],
            "outputs": y.shape[1],
            "classes": None if classes is None else classes.tolist(),
        }
        # The API checks a job against its data with the same function before queueing it.
        checked = check_job_data(self.spec, shape, validation_data)
        if (initial_model is None) != (WARM_START not in self.spec):
            raise SpecError(WARM_START, "the initial model and its id come together")
        if initial_model is not None:
            parent = Parent(
                self.spec[WARM_START],
                initial_model.n_inputs,
                initial_model.spec,
                initial_model.classes,
            )
            check_warm_start(self.spec, shape, parent)
        self.dtype = np.dtype(net["dtype"])
        seed = net["seed"]
        if checked.validation is not None:
            Xv, yv = checked.validation
            self.spec["training"]["validation"] = {"data": True}
        elif tr["validation"] and "fraction" in tr["validation"]:
            X, y, Xv, yv = _split(X, y, tr["validation"]["fraction"], seed)
        else:
            Xv = yv = None
        if initial_model is not None and self.spec["keep_preprocessing"]:
            # The parent's numbers, so the fine-tuned model predicts on the parent's scale.
            self.preprocessor = initial_model.preprocessor
        else:
            # Fitted on the training rows only, so validation scores see unseen statistics.
            self.preprocessor = Preprocessor.fit(self.spec, X, classes)
        X, y = self.preprocessor.transform(X), self.preprocessor.encode(y, "data.y")
        if Xv is not None:
            Xv = self.preprocessor.transform(Xv)
            yv = self.preprocessor.encode(yv, "training.validation.y")
        # Finite in float64 is not finite in float32: 1e39 would only show as a divergence.
        self.X = as_dtype(X, self.dtype, "data.X")
        self.Y = as_dtype(y, self.dtype, "data.y")
        val_path = "training.validation" if validation_data is not None else "data"
        self.X_val = None if Xv is None else as_dtype(Xv, self.dtype, f"{val_path}.X")
        self.Y_val = None if yv is None else as_dtype(yv, self.dtype, f"{val_path}.y")

        self.loss = get_loss(tr)
        fused = self.fused
        sizes = [self.X.shape[1]] + [layer["units"] for layer in net["layers"]]
        if checked.initial_weights is not None:
            params = checked.initial_weights
        elif initial_model is not None:
            params = initial_model.network.parameters()
            for W, b in params:  # a float64 parent's values may not fit float32
                as_dtype(W, self.dtype, WARM_START)
                as_dtype(b, self.dtype, WARM_START)
        else:
            params = initial_parameters(net["init"], seed, sizes)
        self.network = Network(sizes[0], net["layers"], self.dtype, params, keep_logits=fused)
        self.optimizer = get_optimizer(
            self.network.n_params, self.network.n_weights, self.dtype, tr["optimizer"]
        )
        kind = metric_kind(net, tr["loss"])
        self.metrics = EpochMetrics(kind, self.Y)
        self.val_metrics = None if self.Y_val is None else EpochMetrics(kind, self.Y_val)
        # Shuffling draws from its own stream, so init stays the article's legacy draws.
        self.shuffle_rng = np.random.Generator(np.random.PCG64([seed, 1]))
        self.epoch = 0
        # The rate the current (or last) epoch trains at: the schedule's, passed to each step.
        self.learning_rate = tr["optimizer"]["learning_rate"]
        self._history = {"epoch": [], "loss": []}
        self._deferred: DeferredMetrics | None = None
        self.stopped_early = False
        es = tr["early_stopping"]
        self._best = None
        self._best_epoch = 0
        self._wait = 0
        self._best_params = self.network.params.copy() if es and es["restore_best"] else None

    @property
    def fused(self) -> bool:
        """Whether the loss folds the output activation's gradient in (backward skips it)."""
        return self.loss.fused_activation is not None

    @property
    def history(self) -> dict:
        """``{"epoch": [...], "loss": [...], metric: [...], ...}``, every epoch trained so far."""
        if self._deferred is not None:
            self._deferred.settle(self._history)
        return self._history

    @history.setter
    def history(self, value: dict) -> None:
        self._history, self._deferred = value, None

    @property
    def epochs(self) -> int:
        return self.spec["training"]["epochs"]

    # A diverging run overflows before its loss turns non-finite; fit reports that as a
    # DivergenceError itself, so NumPy's overflow warnings are noise (or, with warnings as
    # errors, the wrong exception).
    @np.errstate(over="ignore", invalid="ignore")
    def fit(self, callback: EpochCallback | None = None, defer_metrics: bool = False) -> dict:
        """Train from the current epoch to ``training.epochs`` or an early stop.

        Args:
            callback: called after every epoch with ``(epoch, logs)``; a truthy return stops
                training after that epoch (the state stays resumable).
            defer_metrics: compute the training metrics (not the loss, nor validation's)
                when ``history`` is read rather than every epoch, where that pays: full-batch
                training of a small set, no early stopping on a training metric. ``logs`` then
                lacks them; the history holds the same numbers either way.

        Returns:
            The history: ``{"epoch": [...], "loss": [...], "val_loss"?: [...], metric: [...]}``.

        Raises:
            DivergenceError: the training loss became NaN or infinite.
        """
        tr = self.spec["training"]
        n = self.X.shape[0]
        batch = tr["batch_size"] or n
        batch = min(batch, n)
        full_batch = batch == n
        shuffle = tr["shuffle"] and not full_batch
        mean = self.loss.reduction == "mean"
        net, loss, metrics = self.network, self.loss, self.metrics
        params, grads, fused = net.params, net.grads, self.fused
        forward, backward, step = net.forward, net.backward, self.optimizer.step
        base_lr = tr["optimizer"]["learning_rate"]
        schedule = tr["optimizer"]["schedule"]
        early_stopping = tr["early_stopping"] is not None
        epochs = self.epochs
        X, Y = self.X, self.Y
        starts = range(0, n, batch)
        xbufs, ybufs = {}, {}
        deferred = self._deferred = self._deferral(defer_metrics and full_batch)
        while self.epoch < epochs and not self.stopped_early:
            lr = self.learning_rate = schedule_lr(base_lr, schedule, self.epoch)
            if deferred is None:
                metrics.reset()
            total = 0.0
            if full_batch:
                P, Z, dP = forward(X)
                total = loss.forward_backward(P, Y, Z, dP)
                if deferred is None:
                    metrics.update(P, Y)
                else:
                    deferred.add(P, self._history)
                backward(fused)
                step(params, grads, lr)
            else:
                order = self.shuffle_rng.permutation(n) if shuffle else None
                for s in starts:
                    e = min(s + batch, n)
                    if order is None:
                        xb, yb = self.X[s:e], self.Y[s:e]
                    else:
                        m = e - s
                        if m not in xbufs:
                            xbufs[m] = np.empty((m, self.X.shape[1]), self.dtype)
                            ybufs[m] = np.empty((m, self.Y.shape[1]), self.dtype)
                        xb = np.take(self.X, order[s:e], axis=0, out=xbufs[m])
                        yb = np.take(self.Y, order[s:e], axis=0, out=ybufs[m])
                    P, Z, dP = forward(xb)
                    total += loss.forward_backward(P, yb, Z, dP)
                    metrics.update(P, yb)
                    backward(fused)
                    step(params, grads, lr)
            epoch_loss = total / n if mean else total
            self.epoch += 1
            if not math.isfinite(epoch_loss):
                if deferred is not None:
                    deferred.drop_last()
                raise DivergenceError(self.epoch, epoch_loss)
            logs = {"loss": epoch_loss}
            if deferred is None:
                logs.update(metrics.result())
            if self.X_val is not None:
                logs.update(self.evaluate(self.X_val, self.Y_val, prefix="val_"))
            self._record(logs)
            if early_stopping:
                self._early_stopping(logs)
            if callback is not None and callback(self.epoch, logs):
                # Paused, not finished: keep the live weights so a checkpoint resumes the run.
                return self.history
        if self._best_params is not None and self._best is not None:
            np.copyto(params, self._best_params)
        return self.history

    def evaluate(self, X, Y, prefix: str = "") -> dict:
        """Loss and metrics of the current weights on ``(X, Y)`` without training."""
        P, Z = self.network.predict(X, logits=True)
        total = self.loss.value(P, Y, Z)
        # The validation set's metrics object keeps its column variances from epoch to epoch.
        m = self.val_metrics if Y is self.Y_val else EpochMetrics(self.metrics.kind, Y)
        m.reset()
        m.update(P, Y)
        logs = {"loss": total / len(X) if self.loss.reduction == "mean" else total, **m.result()}
        return {prefix + k: v for k, v in logs.items()}

    def _deferral(self, wanted: bool) -> DeferredMetrics | None:
        """The block that defers this fit's training metrics, or None to compute them per epoch."""
        if self._deferred is not None:
            self._deferred.settle(self._history)
        es = self.spec["training"]["early_stopping"]
        monitor = es["monitor"] if es else "loss"
        on_training_metric = monitor != "loss" and not monitor.startswith("val_")
        if not wanted or on_training_metric or not DeferredMetrics.fits(self.Y.shape):
            return None
        for name in METRIC_NAMES[self.metrics.kind]:  # in their place, before any val_ column
            self._history.setdefault(name, [])
        return DeferredMetrics(self.metrics, self.Y.shape, self.dtype)

    def _record(self, logs: dict) -> None:
        history = self._history
        history["epoch"].append(self.epoch)
        for key, value in logs.items():
            column = history.get(key)
            if column is None:
                column = history[key] = []
            column.append(value)

    def _early_stopping(self, logs: dict) -> None:
        es = self.spec["training"]["early_stopping"]
        if not es:
            return
        value = logs[es["monitor"]]
        sign = 1.0 if higher_is_better(es["monitor"]) else -1.0
        if self._best is None or sign * (value - self._best) > es["min_delta"]:
            self._best, self._best_epoch, self._wait = value, self.epoch, 0
            if self._best_params is not None:
                np.copyto(self._best_params, self.network.params)
            return
        self._wait += 1
        if self._wait >= es["patience"]:
            self.stopped_early = True

    def result_info(self) -> dict:
        """JSON-able facts about the run so far, for the model."""
        last = {k: v[-1] for k, v in self.history.items() if k != "epoch" and v}
        return {
            "epochs_run": self.epoch,
            "stopped_early": self.stopped_early,
            "best_epoch": self._best_epoch or None,
            "final": last,
            "n_train": int(self.X.shape[0]),
            "n_val": 0 if self.X_val is None else int(self.X_val.shape[0]),
        }

    def model(self) -> Model:
        """The trained model (a copy of the current weights)."""
        return Model(
            self.spec,
            self.X.shape[1],
            self.network.parameters(),
            self.result_info(),
            self.preprocessor,
        )

    # -- checkpoints ---------------------------------------------------------------------

    @functools.cached_property
    def _fingerprint(self) -> str:
        """What a checkpoint must have been taken of: this spec and this fitted preprocessing."""
        digest = hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode())
        # Fitted preprocessing follows from spec and data; a checkpoint of other data is stale.
        digest.update(self.preprocessor.digest())
        return digest.hexdigest()

    def checkpoint(self) -> bytes:
        """The full training state as bytes: weights, optimizer, RNG, epoch and history."""
        scalars, slots = self.optimizer.state()
        meta = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self._fingerprint,
            "epoch": self.epoch,
            "optimizer": scalars,
            "rng": self.shuffle_rng.bit_generator.state,
            # History columns travel as arrays: JSON of a million epochs would cost seconds.
            "history": list(self.history),
            "early_stopping": {
                "best": self._best,
                "best_epoch": self._best_epoch,
                "wait": self._wait,
                "stopped": self.stopped_early,
            },
        }
        arrays = {"params": self.network.params, **{f"opt_{k}": v for k, v in slots.items()}}
        if self._best_params is not None:
            arrays["best_params"] = self._best_params
        for column, values in self.history.items():
            dtype = np.int64 if column == "epoch" else np.float64
            arrays[f"history_{column}"] = np.asarray(values, dtype)
        return pack(meta, arrays)

    def restore(self, blob: bytes) -> None:
        """Load a checkpoint taken by a Trainer built from the same spec and data.

        Raises:
            CheckpointError: the blob is damaged or belongs to another spec.
        """
        try:
            meta, arrays = unpack(blob)
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"unreadable checkpoint: {exc}") from exc
        if meta.get("format") != CHECKPOINT_FORMAT or meta["fingerprint"] != self._fingerprint:
            raise CheckpointError("checkpoint belongs to another spec")
        np.copyto(self.network.params, arrays["params"])
        self.optimizer.load_state(
            meta["optimizer"], {k[4:]: v for k, v in arrays.items() if k.startswith("opt_")}
        )
        self.shuffle_rng.bit_generator.state = meta["rng"]
        self.epoch = meta["epoch"]
        self.history = {column: arrays[f"history_{column}"].tolist() for column in meta["history"]}
        es = meta["early_stopping"]
        self._best, self._best_epoch, self._wait = es["best"], es["best_epoch"], es["wait"]
        self.stopped_early = es["stopped"]
        if self._best_params is not None:
            np.copyto(self._best_params, arrays["best_params"])


def _split(X, y, fraction: float, seed: int):
    """A seeded random hold-out: (X_train, y_train, X_val, y_val)."""
    n = X.shape[0]
    n_val = validation_rows(n, fraction)
    order = np.random.Generator(np.random.PCG64([seed, 2])).permutation(n)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return X[train], y[train], X[val], y[val]


def train(spec: dict, X, y, validation_data=None, callback: EpochCallback | None = None):
    """Train and return ``(model, history)``; see ``Trainer``."""
    trainer = Trainer(spec, X, y, validation_data)
    history = trainer.fit(callback)
    return trainer.model(), history
