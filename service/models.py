"""``/v1/models``: trained models, their weights and predictions."""

import io

import numpy as np
from flask import Response, current_app, jsonify
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, fields, validate

import store
from store import FINAL_STATUSES

from .aliases import delete_unless_aliased, model_id_of
from .auth import PUBLIC, current_tenant, owned_or_404
from .endpoints import big_body_hint, doc_only, prediction
from .errors import Blueprint
from .extensions import model_cache, redis_conn
from .onnx_export import UnsupportedActivation
from .onnx_export import to_bytes as onnx_bytes
from .prediction import outputs_response, predict_in_batches, read_inputs
from .schemas import LayerWeightsSchema, ModelSchema, PredictResponseSchema

blp = Blueprint("models", __name__, url_prefix="/v1/models", description="Trained models")

BINARY = "application/octet-stream"
BINARY_DOC = {"content": {BINARY: {"schema": {"type": "string", "format": "binary"}}}}


class WeightsQuerySchema(Schema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "npz"]),
        metadata={"description": "npz: one NumPy .npz file with arrays W0, b0, W1, b1, ..."},
    )


# A model deleted through another API process may still be served here for this long; checking
# on every request would put a Redis round trip on the prediction path.
RECHECK_SECONDS = 1.0


def meta_or_error(model_id: str) -> dict:
    """The description of the model that ``model_id`` (or an alias) names; 409 while its job
    has not finished, 404 when there is none (or another tenant owns it)."""
    model_id = model_id_of(model_id)
    conn = redis_conn()
    tenant = current_tenant()
    meta = store.load_model_meta(conn, model_id)
    if meta is not None and tenant.owns(meta):
        return meta
    # A model's id is its job's id, so a model still being trained can be told apart.
    record = store.get_job(conn, model_id) if meta is None else None
    if record is None or not tenant.owns(record):
        abort(404, message=f"No model {model_id}.")
    if record.get("model_deleted"):
        abort(404, message=f"Model {model_id} was deleted.")
    if record["status"] in FINAL_STATUSES:
        abort(404, message=f"No model {model_id}: job {model_id} {record['status']} without one.")
    abort(
        409,
        message=f"Job {model_id} is {record['status']}; its model exists once it has finished.",
    )


def load_model(model_id: str):
    """The model that ``model_id`` (or an alias, resolved on every call) names, from this
    process's cache when it is there and has not been deleted.

    Aborts with 404 (unknown, deleted, or another tenant's) or 409 (still training).
    """
    model_id = model_id_of(model_id)
    cache = model_cache()
    entry = cache.get(model_id)
    if entry is not None:
        model, owner, age = entry
        owned_or_404({"tenant": owner}, "model", model_id)
        if age < RECHECK_SECONDS:
            return model
        if store.model_exists(redis_conn(), model_id):
            cache.confirm(model_id)
            return model
        cache.discard(model_id)  # deleted through another API process
    meta = meta_or_error(model_id)
    blob = store.load_model_bytes(redis_conn(), model_id)
    if blob is None:
        abort(404, message=f"No model {model_id}.")
    return cache.put(model_id, blob, meta.get("tenant", PUBLIC))


@blp.route("/<mref:model_id>")
class Model(MethodView):
    @blp.response(200, ModelSchema)
    def get(self, model_id):
        """What a model is: its spec, sizes, final loss and metrics, its job's name and tags."""
        meta = meta_or_error(model_id)
        # Labels can change after the model is stored (PATCH /v1/jobs/{id}): read them now.
        record = store.get_job(redis_conn(), meta["job_id"]) or {}
        return {**meta, "name": record.get("name"), "tags": record.get("tags") or []}

    @blp.response(204)
    def delete(self, model_id):
        """Delete a model; models are kept until this is called. 409 while aliases point at it."""
        model_id = model_id_of(model_id)
        owned_or_404(store.load_model_meta(redis_conn(), model_id), "model", model_id)
        delete_unless_aliased(model_id)
        model_cache().discard(model_id)


@blp.route("/<mref:model_id>/weights")
class ModelWeights(MethodView):
    @blp.arguments(WeightsQuerySchema, location="query")
    @blp.response(200, LayerWeightsSchema(many=True))
    @blp.doc(responses={200: BINARY_DOC})
    def get(self, query, model_id):
        """Weights and biases per layer: JSON, or with format=npz one .npz of W0, b0, W1, ...

        JSON (about 20 bytes a parameter) is for models of at most MAX_JSON_WEIGHTS parameters.
        """
        model = load_model(model_id)
        if query["format"] == "json":
            cap = current_app.config["MAX_JSON_WEIGHTS"]
            if model.n_params > cap:
                message = (
                    f"This model has {model.n_params:,} parameters; weights are served as JSON "
                    f"for at most {cap:,} (MAX_JSON_WEIGHTS). Ask for ?format=npz."
                )
                abort(422, message=message, errors={"format": [message]})
            # A Response of its own: dumping a million floats through the schema takes a third
            # longer than writing them.
            return jsonify(model.weights())
        arrays = {}
        for i, (W, b) in enumerate(model.network.parameters()):
            arrays[f"W{i}"], arrays[f"b{i}"] = W, b
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return download(buffer.getvalue(), f"{model_id}.npz")


@blp.route("/<mref:model_id>/onnx")
class ModelOnnx(MethodView):
    @blp.response(200, description="An ONNX model: input 'input' (N, n_inputs), output 'output'.")
    @blp.doc(responses={200: BINARY_DOC})
    def get(self, model_id):
        """The model as an ONNX file in its own dtype, for onnxruntime and other runtimes."""
        model = load_model(model_id)
        try:
            blob = onnx_bytes(model, name=f"backprop_{model_id}")
        except UnsupportedActivation as exc:
            abort(501, message=exc.message, errors=exc.errors)
        return download(blob, f"{model_id}.onnx")


# The hot path of other services' requests, so a plain function view whose body is parsed by
# hand (service/prediction.py), not a MethodView with @blp.arguments/@blp.response: that
# machinery costs more than the forward pass. The documentation is what those decorators would
# have written.
@blp.route("/<mref:model_id>/predict", methods=["POST"])
@doc_only(
    blp.doc(
        requestBody={
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
            },
        }
    ),
    blp.alt_response(200, schema=PredictResponseSchema, success=True),
    blp.alt_response(
        422,
        description="Bad inputs: wrong width, not finite, empty, too many rows, or so large "
        "that the outputs overflow.",
    ),
    blp.alt_response(413, description="A body larger than MAX_JSON_BODY_BYTES."),
)
@big_body_hint(
    "Send big batches as binary tensor data to POST /v2/models/{id}/infer, or in several requests."
)
@prediction
def predict(model_id):
    """Outputs for a batch of inputs, and labels for classifiers."""
    model = load_model(model_id)
    config = current_app.config
    inputs = read_inputs(config["PREDICT_MAX_ROWS"])
    if inputs.shape[1] != model.n_inputs:
        abort(
            422,
            message=f"inputs has {inputs.shape[1]} columns; the model takes {model.n_inputs}.",
            errors={"inputs": [f"Must have {model.n_inputs} columns."]},
        )
    outputs = predict_in_batches(model, inputs, config["PREDICT_BATCH_ROWS"])
    if outputs is None:
        message = overflow_message(model, "inputs")
        abort(422, message=message, errors={"inputs": [message]})
    return outputs_response(model, outputs)


def overflow_message(model, subject: str) -> str:
    """Why outputs that are not finite numbers (JSON has no Infinity) are not returned."""
    dtype = model.spec["network"]["dtype"]
    return f"{subject} overflow the model's {dtype} range: its outputs are not finite numbers."


def download(blob: bytes, filename: str) -> Response:
    """Bytes as an octet-stream attachment named ``filename``."""
    disposition = f'attachment; filename="{filename}"'
    return Response(blob, mimetype=BINARY, headers={"Content-Disposition": disposition})
