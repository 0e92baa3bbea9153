"""The prediction hot path: a body in, outputs out, with as little as possible per request.

A well-formed ``{"inputs": [[...]]}`` is parsed with orjson, checked with a few C-level passes
(rows are lists of one width, values ints or floats) and turned into one float64 array; the
answer is written by orjson straight from the output array. Anything else (bad JSON, NaN
literals, booleans, ragged rows, too many rows) is read again by the general path, with
marshmallow's ``Matrix``, whose 4xx names the field: the fast path never decides an error.

orjson refuses ``NaN``, ``Infinity`` and numbers beyond float64 (1e400), so the inputs it
gives are finite without a check of their own. The outputs' check stays one ``isfinite`` pass:
reading it from their sum instead needs an ``errstate`` (a sum of finite outputs may overflow),
which costs more than the pass it saves.
"""

import time
from itertools import chain

import numpy as np
import orjson
from flask import Response, current_app, request
from flask_smorest import abort
from marshmallow import ValidationError

from .fields import Matrix
from .metrics import PREDICT_SECONDS

NUMBERS = frozenset({int, float})
INPUTS = Matrix()
# The histogram's children, found once rather than by label on every request.
PREDICT_V1 = PREDICT_SECONDS.labels(api="v1")
PREDICT_V2 = PREDICT_SECONDS.labels(api="v2")


def read_inputs(max_rows: int) -> np.ndarray:
    """The request's ``{"inputs": [[...]]}`` as a float64 array, or a 400/415/422 naming the
    field."""
    if request.is_json:
        inputs = _fast_inputs(request.get_data(), max_rows)
        if inputs is not None:
            return inputs
    return _checked_inputs(max_rows)


def _fast_inputs(data: bytes, max_rows: int) -> np.ndarray | None:
    """The inputs of a well-formed body, or None to leave it to ``_checked_inputs``."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict or len(body) != 1:
        return None
    rows = body.get("inputs")
    if type(rows) is not list or not 0 < len(rows) <= max_rows:
        return None
    if set(map(type, rows)) != {list}:
        return None
    widths = set(map(len, rows))
    if len(widths) != 1 or 0 in widths:
        return None
    if not set(map(type, chain.from_iterable(rows))) <= NUMBERS:  # bool is not int here
        return None
    return np.array(rows, dtype=np.float64)  # orjson's numbers are finite float64s or int64s


def _checked_inputs(max_rows: int) -> np.ndarray:
    """The general path: every malformed body gets its own 400/415/422."""
    try:
        body = request.get_json()
    except RecursionError:
        abort(400, message="The JSON body is nested too deeply.")
    if not isinstance(body, dict):
        abort(422, errors={"body": ["Must be an object with inputs."]})
    unknown = sorted(set(body) - {"inputs"})
    if unknown:
        abort(422, errors={key: ["Unknown field."] for key in unknown})
    if "inputs" not in body:
        abort(422, errors={"inputs": ["Missing data for required field."]})
    rows = body["inputs"]
    if isinstance(rows, list) and len(rows) > max_rows:
        abort(422, errors={"inputs": [f"Too many rows: {len(rows)} > {max_rows}."]})
    try:
        return INPUTS.deserialize(rows)
    except ValidationError as exc:
        abort(422, errors={"inputs": exc.messages})


def predict_in_batches(model, inputs: np.ndarray, batch_rows: int, timer=PREDICT_V1):
    """The model's outputs, ``batch_rows`` rows per forward pass to bound the memory used;
    the forward passes are timed into ``timer``. None when an output is not finite."""
    started = time.perf_counter()
    if len(inputs) <= batch_rows:
        outputs = model.predict(inputs)
    else:
        parts = range(0, len(inputs), batch_rows)
        outputs = np.concatenate([model.predict(inputs[i : i + batch_rows]) for i in parts])
    timer.observe(time.perf_counter() - started)
    return outputs if np.isfinite(outputs).all() else None


def outputs_response(model, outputs: np.ndarray) -> Response:
    """``{"outputs": [[...]], "labels"?: [...]}``, written by orjson from the arrays.

    float32 outputs are widened first, so they are written as Python writes them (as /v1 always
    has, and /v2's JSON data does), not as float32's shortest digits.
    """
    body = {"outputs": outputs.astype(np.float64, copy=False)}
    labels = model.labels_from(outputs)
    if labels is not None:
        body["labels"] = labels.tolist()
    return current_app.response_class(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), mimetype="application/json"
    )
