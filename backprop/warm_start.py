"""Warm starts: training that begins from a trained model instead of a fresh draw.

A spec names its initial model by id, ``"initial_model_id": "<id>"``, and says whether that
model's fitted preprocessing (standardisation statistics, class labels) is kept,
``"keep_preprocessing": true`` (the default), or fitted afresh on the job's own data. The spec
records the id only; whoever runs the job passes the ``Model`` itself to the Trainer. The
checks here run twice with the same messages: at submit against the stored model's
description, and in the Trainer against the model.
"""

from typing import NamedTuple

from .exceptions import SpecError

FIELD = "initial_model_id"


class Parent(NamedTuple):
    """What the checks need of an initial model: its id, input width, normalised spec, and
    class labels (None unless it was trained on ``targets: "classes"``)."""

    model_id: str
    n_inputs: int
    spec: dict
    classes: list | None


def normalize(spec: dict) -> dict:
    """``{"initial_model_id", "keep_preprocessing"}`` of a spec, or ``{}`` without a warm start.

    Raises:
        SpecError: naming the field at fault.
    """
    model_id = spec.get(FIELD)
    keep = spec.get("keep_preprocessing")
    if model_id is None:
        if keep is not None:
            raise SpecError("keep_preprocessing", f"needs {FIELD}")
        return {}
    if not isinstance(model_id, str) or not model_id:
        raise SpecError(FIELD, "must be a model id")
    if spec.get("initial_weights") is not None:
        raise SpecError(FIELD, "give initial_weights or initial_model_id, not both")
    keep = True if keep is None else keep
    if not isinstance(keep, bool):
        raise SpecError("keep_preprocessing", "must be true or false")
    return {FIELD: model_id, "keep_preprocessing": keep}


def check(spec: dict, shape: dict, parent: Parent, source: str = "data") -> None:
    """The job's layer sizes are the initial model's, and so is its preprocessing when kept.

    Args:
        spec: the job's normalised spec.
        shape: ``{rows, columns, outputs, classes}`` of its training data (``data_shape``).
        source: where the data comes from, ``data`` or ``dataset_id``.

    Raises:
        SpecError: naming the layer, the data or the preprocessing field at fault.
    """
    name = f"initial model {parent.model_id}"
    layers = spec["network"]["layers"]
    theirs = parent.spec["network"]["layers"]
    if len(layers) != len(theirs):
        raise SpecError("network.layers", f"must have {len(theirs)} layers, as {name} has")
    if shape["columns"] != parent.n_inputs:
        path = "data.X" if source == "data" else source
        raise SpecError(
            path, f"has {shape['columns']} input columns; {name} takes {parent.n_inputs}"
        )
    for i, (mine, its) in enumerate(zip(layers, theirs, strict=True)):
        if mine["units"] != its["units"]:
            raise SpecError(f"network.layers.{i}.units", f"must be {its['units']}, as in {name}")
    if not spec["keep_preprocessing"]:
        return
    kept = "; set keep_preprocessing to false to fit it on this job's data"
    standardize = parent.spec["preprocessing"]["standardize"]
    if spec["preprocessing"]["standardize"] != standardize:
        raise SpecError(
            "preprocessing.standardize", f"must be {str(standardize).lower()}, as in {name}{kept}"
        )
    if spec["targets"] != parent.spec["targets"]:
        raise SpecError("targets", f"must be {parent.spec['targets']!r}, as in {name}{kept}")
    if parent.classes is not None and list(shape["classes"]) != list(parent.classes):
        path = "data.y" if source == "data" else source
        raise SpecError(
            path,
            f"has the class labels {list(shape['classes'])}; {name} was trained on "
            f"{list(parent.classes)}{kept}",
        )
