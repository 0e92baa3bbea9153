"""The trained model in portable form: a JSON-able spec plus arrays."""

import numpy as np

from .network import Network
from .preprocessing import Preprocessor
from .serialization import pack, unpack

FORMAT = "backprop.model/1"


class Model:
    """A trained network and what it needs to predict.

    Args:
        spec: the normalised spec it was trained with.
        n_inputs: input width.
        parameters: ``[(W, b), ...]`` per layer.
        info: JSON-able facts about the run (final loss and metrics, epochs, ...).
        preprocessor: the fitted input standardisation and class labels, if any.
    """

    def __init__(
        self,
        spec: dict,
        n_inputs: int,
        parameters,
        info: dict | None = None,
        preprocessor: Preprocessor | None = None,
    ):
        self.spec = spec
        self.info = dict(info or {})
        self.preprocessor = preprocessor or Preprocessor()
        self.network = Network(
            n_inputs, spec["network"]["layers"], spec["network"]["dtype"], parameters
        )

    @property
    def n_inputs(self) -> int:
        return self.network.n_inputs

    @property
    def n_outputs(self) -> int:
        return self.network.n_outputs

    @property
    def n_params(self) -> int:
        return self.network.n_params

    @property
    def output_activation(self) -> str:
        return self.spec["network"]["layers"][-1]["activation"]

    @property
    def is_classifier(self) -> bool:
        """Softmax output, or sigmoid output trained with binary cross-entropy."""
        loss = self.spec["training"]["loss"]
        return self.output_activation == "softmax" or loss == "binary_crossentropy"

    @property
    def classes(self) -> list | None:
        """The original label of each output unit, for ``targets: "classes"``; else None."""
        classes = self.preprocessor.classes
        return None if classes is None else classes.tolist()

    def predict(self, X):
        """Outputs of shape (n_samples, n_outputs) for X of shape (n_samples, n_inputs).

        X is raw input: a standardising model applies its fitted statistics itself.
        """
        return self.network.predict(self.preprocessor.transform(X))

    def predict_proba(self, X):
        """Class probabilities; the outputs of a classifier."""
        if not self.is_classifier:
            raise ValueError(
                "predict_proba needs a classifier (softmax or sigmoid + cross-entropy)"
            )
        return self.predict(X)

    def labels_from(self, outputs):
        """Labels for outputs of shape (n_samples, n_outputs), or None for regression.

        Softmax: the argmax, shape (n_samples,), as the original class labels when the model
        was trained on them. Sigmoid + cross-entropy: 1 where p >= 0.5, shape (n_samples,) for
        one output and (n_samples, n_outputs) for several.
        """
        if not self.is_classifier:
            return None
        if self.output_activation == "softmax":
            return self.preprocessor.decode(outputs.argmax(axis=1))
        labels = (outputs >= 0.5).astype(np.int64)
        return labels[:, 0] if labels.shape[1] == 1 else labels

    def labels(self, X):
        return self.labels_from(self.predict(X))

    def weights(self) -> list[dict]:
        """``[{"W": [[...]], "b": [...]}, ...]`` as nested lists."""
        return [{"W": W.tolist(), "b": b.tolist()} for W, b in self.network.parameters()]

    def to_bytes(self) -> bytes:
        """npz bytes that ``from_bytes`` turns back into an identical model."""
        pre_meta, pre_arrays = self.preprocessor.state()
        meta = {
            "format": FORMAT,
            "spec": self.spec,
            "n_inputs": self.n_inputs,
            "info": self.info,
            "preprocessing": pre_meta,
        }
        arrays = {f"pre_{name}": array for name, array in pre_arrays.items()}
        for i, (W, b) in enumerate(self.network.parameters()):
            arrays[f"W{i}"], arrays[f"b{i}"] = W, b
        return pack(meta, arrays)

    @classmethod
    def from_bytes(cls, blob: bytes) -> "Model":
        meta, arrays = unpack(blob)
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} blob")
        n_layers = len(meta["spec"]["network"]["layers"])
        params = [(arrays[f"W{i}"], arrays[f"b{i}"]) for i in range(n_layers)]
        # Models written before preprocessing existed carry none.
        pre_arrays = {k[4:]: v for k, v in arrays.items() if k.startswith("pre_")}
        preprocessor = Preprocessor.from_state(meta.get("preprocessing"), pre_arrays)
        return cls(meta["spec"], meta["n_inputs"], params, meta["info"], preprocessor)
