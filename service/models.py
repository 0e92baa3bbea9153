"""``/v1/models``: trained models, their weights and predictions."""

from flask.views import MethodView
from flask_smorest import abort

import store
from store import FINAL_STATUSES

from .errors import Blueprint
from .extensions import model_cache, redis_conn
from .schemas import LayerWeightsSchema, ModelSchema, PredictRequestSchema, PredictResponseSchema

blp = Blueprint("models", __name__, url_prefix="/v1/models", description="Trained models")


def meta_or_error(model_id: str) -> dict:
    """The model's description; 409 while its job has not finished, 404 when there is none."""
    conn = redis_conn()
    meta = store.load_model_meta(conn, model_id)
    if meta is not None:
        return meta
    # A model's id is its job's id, so a model still being trained can be told apart.
    record = store.get_job(conn, model_id)
    if record is None:
        abort(404, message=f"No model {model_id}.")
    if record["status"] in FINAL_STATUSES:
        abort(404, message=f"No model {model_id}: job {model_id} {record['status']} without one.")
    abort(
        409,
        message=f"Job {model_id} is {record['status']}; its model exists once it has finished.",
    )


def load_model(model_id: str):
    """The model, from this process's cache when it is there and has not been deleted."""
    cache = model_cache()
    model = cache.get(model_id)
    if model is not None and not store.model_exists(redis_conn(), model_id):
        cache.discard(model_id)  # deleted through another API process
        model = None
    if model is None:
        meta_or_error(model_id)
        blob = store.load_model_bytes(redis_conn(), model_id)
        if blob is None:
            abort(404, message=f"No model {model_id}.")
        model = cache.put(model_id, blob)
    return model


@blp.route("/<string:model_id>")
class Model(MethodView):
    @blp.response(200, ModelSchema)
    def get(self, model_id):
        """What a model is: its spec, sizes, final loss and metrics."""
        return meta_or_error(model_id)

    @blp.response(204)
    def delete(self, model_id):
        """Delete a model; models are kept until this is called."""
        if not store.delete_model(redis_conn(), model_id):
            abort(404, message=f"No model {model_id}.")
        model_cache().discard(model_id)


@blp.route("/<string:model_id>/weights")
class ModelWeights(MethodView):
    @blp.response(200, LayerWeightsSchema(many=True))
    def get(self, model_id):
        """Weights and biases per layer."""
        return load_model(model_id).weights()


@blp.route("/<string:model_id>/predict")
class ModelPredict(MethodView):
    @blp.arguments(PredictRequestSchema)
    @blp.response(200, PredictResponseSchema)
    def post(self, args, model_id):
        """Outputs for a batch of inputs, and labels for classifiers."""
        model = load_model(model_id)
        inputs = args["inputs"]
        if inputs.shape[1] != model.n_inputs:
            abort(
                422,
                message=f"inputs has {inputs.shape[1]} columns; the model takes {model.n_inputs}.",
                errors={"inputs": [f"Must have {model.n_inputs} columns."]},
            )
        outputs = model.predict(inputs)
        body = {"outputs": outputs.tolist()}
        labels = model.labels_from(outputs)
        if labels is not None:
            body["labels"] = labels.tolist()
        return body
