"""Request and response schemas. Types, ranges and enums live here; the rules that tie fields
together (softmax last, loss against output activation, shapes against layers) are the
engine's own, run from ``post_load`` so that the API and the engine never disagree.
"""

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_dump,
    post_load,
    validate,
    validates_schema,
)

from backprop.activations import ACTIVATIONS
from backprop.exceptions import SpecError
from backprop.initializers import SCHEMES
from backprop.losses import LOSSES
from backprop.optimizers import OPTIMIZERS
from backprop.spec import DTYPES, SCHEDULES, check_data, check_initial_weights, normalize
from store import JobStatus

from .fields import Bool, Matrix, Number, Vector

MAX_UNITS = 4096
MAX_LAYERS = 32
MAX_EPOCHS = 1_000_000
MAX_ROWS = 1_000_000
MONITORS = ("loss", "accuracy", "mae", "r2")


def _one_of(choices):
    return validate.OneOf(sorted(choices))


def _positive(**kwargs):
    return Number(validate=validate.Range(min=0, min_inclusive=False), **kwargs)


def _fraction(**kwargs):
    return Number(validate=validate.Range(min=0, max=1, max_inclusive=False), **kwargs)


class LayerSchema(Schema):
    units = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_UNITS))
    activation = fields.String(required=True, validate=_one_of(ACTIVATIONS))
    alpha = _positive(metadata={"description": "Slope or scale for leaky_relu and elu."})


class InitSchema(Schema):
    scheme = fields.String(required=True, validate=_one_of(SCHEMES))
    low = Number()
    high = Number()
    mean = Number()
    std = _positive()
    bias = fields.String(
        validate=validate.OneOf(["zeros", "scheme"]),
        metadata={"description": "Zeros, or drawn by the scheme (default for uniform/normal)."},
    )


class NetworkSchema(Schema):
    layers = fields.List(
        fields.Nested(LayerSchema), required=True, validate=validate.Length(1, MAX_LAYERS)
    )
    init = fields.Nested(InitSchema)
    seed = fields.Integer(strict=True, allow_none=True, validate=validate.Range(0, 2**32 - 1))
    dtype = fields.String(validate=validate.OneOf(DTYPES))


class ScheduleSchema(Schema):
    name = fields.String(required=True, validate=validate.OneOf(SCHEDULES))
    gamma = Number(validate=validate.Range(min=0, max=1, min_inclusive=False))
    step_size = fields.Integer(strict=True, validate=validate.Range(min=1))
    decay = Number(validate=validate.Range(min=0))


class OptimizerSchema(Schema):
    name = fields.String(required=True, validate=_one_of(OPTIMIZERS))
    learning_rate = Number(validate=validate.Range(min=0, max=10, min_inclusive=False))
    momentum = _fraction()
    nesterov = Bool()
    beta_1 = _fraction()
    beta_2 = _fraction()
    epsilon = _positive()
    rho = _fraction()
    weight_decay = Number(validate=validate.Range(min=0))
    schedule = fields.Nested(ScheduleSchema)


class ValidationSetSchema(Schema):
    fraction = Number(
        validate=validate.Range(min=0, max=1, min_inclusive=False, max_inclusive=False)
    )
    X = Matrix(max_rows=MAX_ROWS)
    y = Matrix(allow_vector=True, max_rows=MAX_ROWS)

    @validates_schema
    def one_kind(self, data, **kwargs):
        explicit = "X" in data or "y" in data
        if explicit == ("fraction" in data):
            raise ValidationError("Give either fraction or both X and y.", "_schema")
        if explicit and not ("X" in data and "y" in data):
            raise ValidationError("Give both X and y.", "X" if "X" not in data else "y")


class EarlyStoppingSchema(Schema):
    monitor = fields.String(
        validate=validate.OneOf(list(MONITORS) + [f"val_{m}" for m in MONITORS])
    )
    patience = fields.Integer(strict=True, validate=validate.Range(0, MAX_EPOCHS))
    min_delta = Number(validate=validate.Range(min=0))
    restore_best = Bool()


class TrainingSchema(Schema):
    loss = fields.String(required=True, validate=_one_of(LOSSES))
    huber_delta = _positive()
    optimizer = fields.Nested(OptimizerSchema, required=True)
    epochs = fields.Integer(strict=True, validate=validate.Range(1, MAX_EPOCHS))
    batch_size = fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "null trains on the full batch, as the article does."},
    )
    shuffle = Bool()
    validation = fields.Nested(ValidationSetSchema, allow_none=True)
    early_stopping = fields.Nested(EarlyStoppingSchema, allow_none=True)
    max_runtime_seconds = _positive(
        metadata={"description": "Training time allowed over all attempts; past it: timeout."}
    )


class DataSchema(Schema):
    X = Matrix(required=True, max_rows=MAX_ROWS)
    y = Matrix(required=True, allow_vector=True, max_rows=MAX_ROWS)


class WeightsSchema(Schema):
    W = Matrix(required=True)
    b = Vector(required=True)


class JobCreateSchema(Schema):
    """A training job: network, training settings and data."""

    network = fields.Nested(NetworkSchema, required=True)
    training = fields.Nested(TrainingSchema, required=True)
    data = fields.Nested(DataSchema, required=True)
    initial_weights = fields.List(fields.Nested(WeightsSchema), validate=validate.Length(min=1))

    @post_load
    def to_job(self, data, **kwargs):
        """``{"spec": normalised JSON-able spec, "arrays": {name: ndarray}}``."""
        arrays = {"X": data["data"]["X"], "y": data["data"]["y"]}
        training = dict(data["training"])
        max_runtime = training.pop("max_runtime_seconds", None)
        validation = training.get("validation")
        if validation and "X" in validation:
            arrays["X_val"], arrays["y_val"] = validation["X"], validation["y"]
            training["validation"] = {"data": True}
        try:
            spec = normalize({"network": data["network"], "training": training})
            n_outputs = spec["network"]["layers"][-1]["units"]
            check_data(arrays["X"], arrays["y"], n_outputs)
            if "X_val" in arrays:
                check_data(arrays["X_val"], arrays["y_val"], n_outputs, "training.validation")
                if arrays["X_val"].shape[1] != arrays["X"].shape[1]:
                    raise SpecError("training.validation.X", "must have as many columns as data.X")
            if data.get("initial_weights"):
                sizes = [arrays["X"].shape[1]] + [la["units"] for la in spec["network"]["layers"]]
                pairs = [(w["W"], w["b"]) for w in data["initial_weights"]]
                weights = [{"W": W, "b": b} for W, b in pairs]
                check_initial_weights(weights, sizes)
                spec["initial_weights"] = [{"W": W.tolist(), "b": b.tolist()} for W, b in pairs]
        except SpecError as exc:
            raise ValidationError({exc.path: [exc.message]}) from exc
        return {"spec": spec, "arrays": arrays, "max_runtime_seconds": max_runtime}


class ErrorInfoSchema(Schema):
    code = fields.String()
    message = fields.String()


class ProgressSchema(Schema):
    epoch = fields.Integer()
    epochs = fields.Integer()
    loss = fields.Float(allow_none=True)
    val_loss = fields.Float(allow_none=True)
    eta_seconds = fields.Float(allow_none=True)


class JobSchema(Schema):
    id = fields.String()
    status = fields.String(validate=validate.OneOf([s.value for s in JobStatus]))
    progress = fields.Nested(ProgressSchema)
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    ended_at = fields.String(allow_none=True)
    attempts = fields.Integer()
    error = fields.Nested(ErrorInfoSchema, allow_none=True)
    model_id = fields.String(allow_none=True)
    cancel_requested = fields.Boolean()
    max_runtime_seconds = fields.Float(allow_none=True)


class SubmitQuerySchema(Schema):
    dry_run = fields.Boolean(
        load_default=False, metadata={"description": "Validate and estimate; queue nothing."}
    )


class EstimateSchema(Schema):
    parameters = fields.Integer()
    flops_per_epoch = fields.Integer()
    total_flops = fields.Integer()
    weight_bytes = fields.Integer()


class DryRunSchema(Schema):
    valid = fields.Boolean()
    estimate = fields.Nested(EstimateSchema)
    limits = fields.Dict(keys=fields.String(), values=fields.Float())


class JobListQuerySchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    cursor = fields.String(validate=validate.Length(1, 64))


class JobListSchema(Schema):
    jobs = fields.List(fields.Nested(JobSchema))
    next_cursor = fields.String(allow_none=True)


class HistorySchema(Schema):
    class Meta:
        # Metric columns depend on the job: accuracy, mae, r2 and their val_ twins.
        unknown = "include"

    epoch = fields.List(fields.Integer())
    loss = fields.List(fields.Float())
    val_loss = fields.List(fields.Float())

    @post_dump(pass_original=True)
    def keep_metric_columns(self, data, original, **kwargs):
        """Dumping keeps only declared fields; the metric columns are passed through too."""
        return {**original, **data}


class ModelSchema(Schema):
    id = fields.String()
    job_id = fields.String()
    created_at = fields.String()
    spec = fields.Dict()
    n_inputs = fields.Integer()
    n_outputs = fields.Integer()
    n_params = fields.Integer()
    final_loss = fields.Float(allow_none=True)
    final_metrics = fields.Dict(keys=fields.String(), values=fields.Float())
    epochs_run = fields.Integer()
    stopped_early = fields.Boolean()
    best_epoch = fields.Integer(allow_none=True)


class LayerWeightsSchema(Schema):
    W = fields.List(fields.List(fields.Float()))
    b = fields.List(fields.Float())


class PredictRequestSchema(Schema):
    inputs = Matrix(required=True, max_rows=100_000)


class PredictResponseSchema(Schema):
    outputs = fields.List(fields.List(fields.Float()))
    labels = fields.Raw(metadata={"description": "Classifiers only: argmax or 0.5 threshold."})


class StatusSchema(Schema):
    status = fields.String()
    redis = fields.String()
    workers = fields.Integer()
