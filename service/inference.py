"""``/v2``: the Open Inference Protocol (KServe V2, Triton's HTTP API), so its clients work as is.

Each model has one version, ``"1"``, one input ``input`` of shape (N, n_inputs) and one output
``output`` of shape (N, n_outputs), in the model's dtype (FP32 or FP64). Requests carry tensors
as JSON ``data`` or, with the binary tensor extension, as raw little-endian bytes after a JSON
header whose length is ``Inference-Header-Content-Length``. Every error is ``{"error": "..."}``.
"""

import json

import numpy as np
import redis
from flask import Blueprint, Response, current_app, jsonify, request
from flask.views import MethodView
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    UnprocessableEntity,
    UnsupportedMediaType,
)

from . import bodies, errors
from .endpoints import big_body_hint, open_endpoint, prediction, raw_body
from .extensions import redis_conn
from .models import load_model, overflow_message
from .prediction import PREDICT_V2, predict_in_batches

bp = Blueprint("inference", __name__, url_prefix="/v2")

SERVER_NAME = "backprop-service"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "backprop"
VERSION = "1"  # a trained model never changes, so it has exactly one version
INPUT, OUTPUT = "input", "output"
HEADER_LENGTH = "Inference-Header-Content-Length"
# tritonclient sends no Content-Type at all; curl users may say either of the others.
BODY_TYPES = ("", "application/json", "application/octet-stream")
# Tensor datatypes accepted on input, as little-endian NumPy dtypes; the engine casts them.
DATATYPES = {
    name: np.dtype(code)
    for name, code in {
        "FP32": "<f4",
        "FP64": "<f8",
        "INT8": "i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "UINT8": "u1",
        "UINT16": "<u2",
        "UINT32": "<u4",
        "UINT64": "<u8",
    }.items()
}
MODEL_DATATYPES = {"float32": "FP32", "float64": "FP64"}
# The JSON header of a binary request only names the tensors; their data follows it.
BINARY_HEADER_BYTES = 64 * 1024


def protocol_error(error: HTTPException):
    """``{"error": message}`` with the error's status, for every failure under /v2."""
    data = getattr(error, "data", None) or {}  # flask_smorest.abort puts its message here
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    headers = errors.with_retry_after(error, headers)  # as /v1's 429 says it
    return jsonify(error=data.get("message") or error.description), error.code, headers


def redis_failed(exc: redis.exceptions.RedisError):
    """/v1's answer to a Redis failure (``errors.redis_failure``), in this protocol's shape."""
    status, message, headers = errors.redis_failure(exc)
    return jsonify(error=message), status, headers


bp.register_error_handler(HTTPException, protocol_error)
for failure in errors.REDIS_FAILURES:
    bp.register_error_handler(failure, redis_failed)


@bp.before_app_request
def unknown_url():
    """A URL under /v2 that matches no view fails in this protocol's shape too, not /v1's."""
    error = request.routing_exception
    under_v2 = request.path == bp.url_prefix or request.path.startswith(bp.url_prefix + "/")
    if under_v2 and isinstance(error, NotFound | MethodNotAllowed):
        return protocol_error(error)
    return None


def find_model(model_id: str, version: str | None):
    """The model, or 404 for an unknown model or version (409 while it is still training)."""
    if version is not None and version != VERSION:
        raise NotFound(f"Model {model_id} has no version {version}; its only version is {VERSION}.")
    return load_model(model_id)


def model_datatype(model) -> str:
    return MODEL_DATATYPES[model.spec["network"]["dtype"]]


class ServerMetadata(MethodView):
    def get(self):
        """The server's name, version and protocol extensions."""
        version = current_app.config["API_VERSION"]
        return {"name": SERVER_NAME, "version": version, "extensions": EXTENSIONS}


@open_endpoint  # a probe, like /healthz
class ServerLive(MethodView):
    def get(self):
        """The process is up."""
        return {"live": True}


@open_endpoint
class ServerReady(MethodView):
    def get(self):
        """Redis answers, so models can be loaded; predicting needs no rq worker."""
        try:
            redis_conn().ping()
        except redis.exceptions.RedisError:
            return {"ready": False}, 503
        return {"ready": True}


class ModelMetadata(MethodView):
    def get(self, model_id, version=None):
        """A model's versions and its input and output tensors."""
        model = find_model(model_id, version)
        datatype = model_datatype(model)
        return {
            "name": model_id,
            "versions": [VERSION],
            "platform": PLATFORM,
            "inputs": [{"name": INPUT, "datatype": datatype, "shape": [-1, model.n_inputs]}],
            "outputs": [{"name": OUTPUT, "datatype": datatype, "shape": [-1, model.n_outputs]}],
        }


class ModelReady(MethodView):
    def get(self, model_id, version=None):
        """200 once the model exists: it is loaded on the first request that needs it."""
        find_model(model_id, version)
        return {"name": model_id, "ready": True}


@raw_body  # JSON, or a JSON header followed by binary tensors
@big_body_hint(f"Send big batches as binary tensor data ({HEADER_LENGTH}), or in several requests.")
@prediction
class ModelInfer(MethodView):
    def post(self, model_id, version=None):
        """Outputs for one ``input`` tensor, as JSON data or binary tensor data."""
        model = find_model(model_id, version)
        config = current_app.config
        cap_body(model.n_inputs, config)
        header, tail = read_body()
        X = read_input(header, tail, model.n_inputs, config["PREDICT_MAX_ROWS"])
        binary = wants_binary_output(header)
        outputs = predict_in_batches(model, X, config["PREDICT_BATCH_ROWS"], PREDICT_V2)
        if outputs is None:
            raise UnprocessableEntity(overflow_message(model, f"The values of {INPUT!r}"))
        tensor = {"name": OUTPUT, "datatype": model_datatype(model), "shape": list(outputs.shape)}
        body = {"model_name": model_id, "model_version": VERSION}
        if "id" in header:
            body["id"] = header["id"]
        body["outputs"] = [tensor]
        if not binary:
            tensor["data"] = outputs.ravel().tolist()  # row-major, as the protocol flattens
            return body
        raw = outputs.astype(outputs.dtype.newbyteorder("<"), copy=False).tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
        head = json.dumps(body, separators=(",", ":")).encode()
        return Response(
            head + raw, mimetype="application/octet-stream", headers={HEADER_LENGTH: str(len(head))}
        )


def cap_body(n_inputs: int, config) -> None:
    """413 before anything is read for a body larger than the biggest valid request: the JSON
    cap for JSON tensors; for binary ones PREDICT_MAX_ROWS rows of the widest datatype (and
    never more than MAX_CONTENT_LENGTH)."""
    if HEADER_LENGTH not in request.headers:
        bodies.cap_json()  # tritonclient's JSON requests have no Content-Type
        return
    rows, itemsize = config["PREDICT_MAX_ROWS"], max(d.itemsize for d in DATATYPES.values())
    cap = BINARY_HEADER_BYTES + rows * n_inputs * itemsize
    limit = (
        f"at most {cap:,} for this model: {rows:,} rows (PREDICT_MAX_ROWS) of {n_inputs} inputs "
        f"of {itemsize} bytes, after a JSON header of up to {BINARY_HEADER_BYTES:,}."
    )
    bodies.refuse_larger_than(cap, limit)


def read_body() -> tuple[dict, memoryview]:
    """The request's JSON header and the binary tensor bytes after it (empty without them)."""
    if request.content_encoding:
        raise UnsupportedMediaType(f"Content-Encoding {request.content_encoding} is not supported.")
    if request.mimetype not in BODY_TYPES:
        raise UnsupportedMediaType(
            f"Send the request as JSON, with binary tensor data after it if any, not as "
            f"{request.mimetype}."
        )
    body = request.get_data(cache=False)
    n = header_length(request.headers.get(HEADER_LENGTH), len(body))
    try:
        header = json.loads(body[:n])
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, or nested too deep
        raise BadRequest(f"The inference request is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise BadRequest("The inference request must be a JSON object.")
    if "id" in header and not isinstance(header["id"], str):
        raise BadRequest("id must be a string.")
    return header, memoryview(body)[n:]


def header_length(value: str | None, body_size: int) -> int:
    """The JSON header's length from ``Inference-Header-Content-Length``; the whole body
    without it. 400 unless it is a decimal byte count within the body."""
    if value is None:
        return body_size
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses; and no more of
    # them than the body's size has, so int() never meets thousands of digits.
    if value.isascii() and value.isdigit() and len(value) <= len(str(body_size)):
        n = int(value)
        if n <= body_size:
            return n
    raise BadRequest(f"{HEADER_LENGTH} must be a byte count within the body's {body_size}.")


def read_input(header: dict, tail: memoryview, n_inputs: int, max_rows: int) -> np.ndarray:
    """The ``input`` tensor as an array of shape (rows, n_inputs), in the datatype it was sent;
    at most ``max_rows`` rows."""
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest(f"inputs must be a list of one tensor, {INPUT!r}.")
    tensor = inputs[0]
    if tensor.get("name") != INPUT:
        raise BadRequest(f"Unknown input {tensor.get('name')!r}; the model's input is {INPUT!r}.")
    shape = tensor.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(d) is int for d in shape)):
        raise BadRequest(f"The shape of {INPUT!r} must be [rows, {n_inputs}], not {shape}.")
    rows, columns = shape
    if columns != n_inputs:
        raise BadRequest(f"{INPUT!r} has {columns} columns; the model takes {n_inputs}.")
    if not 1 <= rows <= max_rows:
        raise BadRequest(f"{INPUT!r} must have 1 to {max_rows} rows, not {rows}.")
    dtype = DATATYPES.get(tensor.get("datatype"))
    if dtype is None:
        raise BadRequest(f"datatype must be one of {', '.join(DATATYPES)}.")
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict) or any(k.startswith("shared_memory") for k in parameters):
        raise BadRequest("parameters must be an object; shared memory is not supported.")
    if "binary_data_size" in parameters:
        X = from_binary(tensor, parameters["binary_data_size"], tail, dtype, rows * columns)
    elif tail:
        raise BadRequest(f"{len(tail)} bytes of binary data follow, but no input names its size.")
    else:
        X = from_json(tensor.get("data"), dtype, rows * columns)
    X = X.reshape(rows, columns)
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise BadRequest(f"{INPUT!r} holds NaN or infinite values.")
    return X


def from_binary(tensor: dict, size, tail: memoryview, dtype: np.dtype, count: int) -> np.ndarray:
    """A flat array from the binary data after the JSON header."""
    if "data" in tensor:
        raise BadRequest(f"{INPUT!r} has both data and binary_data_size; send one.")
    expected = count * dtype.itemsize
    if type(size) is not int or size != expected:
        raise BadRequest(f"binary_data_size of {INPUT!r} must be {expected}, not {size}.")
    if len(tail) != size:
        raise BadRequest(f"binary_data_size is {size} bytes, but {len(tail)} follow the header.")
    # A copy, since the bytes start wherever the header ends: an unaligned view would send
    # the matmul down NumPy's non-BLAS loop and the outputs could differ from /v1's in the last bit.
    return np.frombuffer(tail, dtype).copy()


def from_json(data, dtype: np.dtype, count: int) -> np.ndarray:
    """A flat array from JSON ``data``, flat or nested by rows (row-major either way)."""
    if not isinstance(data, list):
        raise BadRequest(f"{INPUT!r} needs data (a list of numbers) or binary_data_size.")
    flat = []
    for item in data:
        if type(item) is list:
            flat.extend(item)
        else:
            flat.append(item)
    if len(flat) != count:
        raise BadRequest(f"data of {INPUT!r} has {len(flat)} values; its shape needs {count}.")
    kinds = (int,) if dtype.kind in "iu" else (int, float)  # never bool, str or None
    if not all(type(v) in kinds for v in flat):
        kind = "integers" if dtype.kind in "iu" else "numbers"
        raise BadRequest(f"data of {INPUT!r} must hold {kind} only.")
    try:
        return np.array(flat, dtype)
    except OverflowError as exc:
        raise BadRequest(f"data of {INPUT!r} is out of range for its datatype: {exc}") from exc


def wants_binary_output(header: dict) -> bool:
    """Whether ``output`` goes back as binary data (its own parameter, else the request's)."""
    parameters = header.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("parameters must be an object.")
    binary = parameters.get("binary_data_output", False)
    outputs = header.get("outputs") or []
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise BadRequest("outputs must be a list of objects.")
    for output in outputs:
        if output.get("name") != OUTPUT:
            raise BadRequest(
                f"Unknown output {output.get('name')!r}; the model's output is {OUTPUT!r}."
            )
        options = output.get("parameters") or {}
        if not isinstance(options, dict):
            raise BadRequest("parameters of an output must be an object.")
        if options.get("classification"):
            raise BadRequest("The classification extension is not supported.")
        binary = options.get("binary_data", binary)
    if not isinstance(binary, bool):
        raise BadRequest("binary_data and binary_data_output must be true or false.")
    return binary


def route(view, *rules: str) -> None:
    view_func = view.as_view(view.__name__)  # "inference.ModelInfer", as flask-smorest names
    for rule in rules:
        bp.add_url_rule(rule, view_func=view_func)


route(ServerMetadata, "")
route(ServerLive, "/health/live")
route(ServerReady, "/health/ready")
MODEL = "/models/<mref:model_id>"  # an id or an alias; anything else is 404 before Redis
VERSIONED = f"{MODEL}/versions/<version>"
route(ModelMetadata, MODEL, VERSIONED)
route(ModelReady, f"{MODEL}/ready", f"{VERSIONED}/ready")
route(ModelInfer, f"{MODEL}/infer", f"{VERSIONED}/infer")
