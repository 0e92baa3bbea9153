"""Request and response schemas. Types, ranges and enums live here; the rules that tie fields
together (softmax last, loss against output activation, shapes against layers) are the
engine's own, run from ``post_load`` so that the API and the engine never disagree.
"""

from datetime import UTC

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
from backprop.hyperparameters import Hyperparameter
from backprop.initializers import MAX_INIT_MAGNITUDE, SCHEMES
from backprop.losses import LOSSES
from backprop.metrics import METRIC_NAMES
from backprop.optimizers import OPTIMIZERS
from backprop.preprocessing import TARGETS
from backprop.spec import DTYPES, SCHEDULES, check_job_data, data_shape, normalize
from store import JobStatus, labels
from store.models import LINEAGE_DEPTH
from store.webhooks import EVENTS, MAX_CALLBACKS, MAX_URL_LENGTH, DeliveryStatus

from .config import from_env
from .fields import RECTANGULAR, Bool, Matrix, Number, Vector
from .ids import IdValidator, ModelRefValidator

MAX_UNITS = 4096
MAX_LAYERS = 32
MAX_EPOCHS = 1_000_000
MAX_ROWS = 1_000_000
# What early stopping may watch: the loss and every metric the engine reports (not val_ yet).
MONITORS = ("loss", *dict.fromkeys(m for names in METRIC_NAMES.values() for m in names))
# History entries one GET returns by default and at most: about 70 bytes each with four columns.
HISTORY_PAGE_ROWS = 10_000
HISTORY_MAX_ROWS = 100_000
# The longest a GET of a job may wait for its end (?wait=).
MAX_WAIT_SECONDS = 60


def _one_of(choices):
    return validate.OneOf(sorted(choices))


def _positive(**kwargs):
    return Number(validate=validate.Range(min=0, min_inclusive=False), **kwargs)


def _fraction(**kwargs):
    return Number(validate=validate.Range(min=0, max=1, max_inclusive=False), **kwargs)


def hyperparameter_field(hyperparameter: Hyperparameter, **kwargs) -> fields.Field:
    """The schema field of an engine hyperparameter, with the bounds its class declares."""
    if hyperparameter.is_flag:
        return Bool(**kwargs)
    bounds = validate.Range(
        min=hyperparameter.low,
        max=hyperparameter.high,
        min_inclusive=not hyperparameter.low_open,
        max_inclusive=not hyperparameter.high_open,
    )
    if hyperparameter.is_integer:
        return fields.Integer(strict=True, validate=bounds, **kwargs)
    return Number(validate=bounds, **kwargs)


def merged_hyperparameters(classes) -> dict[str, Hyperparameter]:
    """The hyperparameters of engine classes (optimizers, activations) by name; one name has
    one set of bounds in all of them (only its default may differ)."""
    merged: dict[str, Hyperparameter] = {}
    for cls in classes:
        for key, hyperparameter in cls.hyperparameters.items():
            known = merged.setdefault(key, hyperparameter)
            bounds = (known.low, known.high, known.low_open, known.high_open)
            mine = (hyperparameter.low, hyperparameter.high)
            mine += (hyperparameter.low_open, hyperparameter.high_open)
            if bounds != mine:
                raise TypeError(f"{cls.name}.{key} is bounded unlike the others")
    return merged


class LayerSchema(Schema):
    units = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_UNITS))
    activation = fields.String(required=True, validate=_one_of(ACTIVATIONS))
    alpha = hyperparameter_field(
        merged_hyperparameters(ACTIVATIONS.values())["alpha"],
        metadata={"description": "Slope or scale for leaky_relu and elu."},
    )


def _init_parameter(**kwargs):
    bound = MAX_INIT_MAGNITUDE
    return Number(validate=validate.Range(-bound, bound), **kwargs)


class InitSchema(Schema):
    scheme = fields.String(required=True, validate=_one_of(SCHEMES))
    low = _init_parameter()
    high = _init_parameter()
    mean = _init_parameter()
    std = Number(validate=validate.Range(0, MAX_INIT_MAGNITUDE, min_inclusive=False))
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


# Its fields come from the schedule classes, like OptimizerSchema's from the optimizers.
ScheduleSchema = type(
    "ScheduleSchema",
    (Schema,),
    {
        "__module__": __name__,
        "name": fields.String(required=True, validate=validate.OneOf(list(SCHEDULES))),
        **{
            key: hyperparameter_field(h)
            for key, h in merged_hyperparameters(SCHEDULES.values()).items()
        },
    },
)


# Its fields come from the optimizer classes, which own their hyperparameters and bounds.
# (Built with type(), not Schema.from_dict, so that it is registered by name like the others.)
OptimizerSchema = type(
    "OptimizerSchema",
    (Schema,),
    {
        "__module__": __name__,
        "name": fields.String(required=True, validate=_one_of(OPTIMIZERS)),
        **{
            key: hyperparameter_field(h)
            for key, h in merged_hyperparameters(OPTIMIZERS.values()).items()
        },
        "schedule": fields.Nested(ScheduleSchema),
    },
)


class ValidationSetSchema(Schema):
    class Meta:
        # one_kind, as OpenAPI says it (no other properties are allowed).
        openapi = {
            "oneOf": [
                {"required": ["fraction"], "maxProperties": 1},
                {"required": ["X", "y"], "maxProperties": 2},
            ]
        }

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
    class Meta:
        openapi = {"description": "X and y have as many rows."}

    X = Matrix(required=True, max_rows=MAX_ROWS)
    y = Matrix(required=True, allow_vector=True, max_rows=MAX_ROWS)


class PreprocessingSchema(Schema):
    standardize = Bool(
        metadata={
            "description": "Scale inputs to zero mean and unit variance with statistics of the "
            "training rows; the model applies them to every prediction."
        }
    )


class WeightsSchema(Schema):
    W = Matrix(required=True)
    b = Vector(required=True)


# What OpenAPI can say of a callback URL: http(s), a host (and port) without credentials, then
# printable ASCII. Whether the host resolves, and to a public address, is checked at submit.
CALLBACK_URL = r"^[Hh][Tt][Tt][Pp][Ss]?://[-.:\[\]A-Za-z0-9_~%!$&'()*+,;=]+([/?#][!-~]*)?$"


class CallbackUrl(validate.Regexp):
    """An http or https URL without user:password@; documented as its pattern."""

    def __init__(self):
        super().__init__(
            CALLBACK_URL,
            error="Must be an http:// or https:// URL of printable ASCII, without a user name "
            "or password (a signature, not the URL, authenticates the call).",
        )

    def __call__(self, value: str) -> str:
        # fullmatch: $ alone would also let a trailing newline through.
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class CallbackSchema(Schema):
    url = fields.String(
        required=True,
        validate=[validate.Length(max=MAX_URL_LENGTH), CallbackUrl()],
        metadata={
            "description": "Receives a signed POST per event. Its host must resolve, and only "
            "to public addresses (loopback, link-local and private ones are refused unless "
            "the service sets WEBHOOK_ALLOW_PRIVATE=1)."
        },
    )
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENTS)),
        validate=validate.Length(min=1),
        load_default=lambda: list(EVENTS),
        metadata={"description": "When to call; all four when left out."},
    )


# A job's labels; the bounds are store.labels's, which the validators below apply in full.
def _text(max_length: int) -> list:
    return [validate.Length(1, max_length), validate.Regexp(labels.TEXT_PATTERN)]


def _name_field(**kwargs) -> fields.String:
    return fields.String(
        validate=_text(labels.NAME_MAX_LENGTH),
        metadata={"description": "What you call the job; GET /v1/jobs?name= finds it by prefix."},
        **kwargs,
    )


def _tags_field(**kwargs) -> fields.List:
    return fields.List(
        fields.String(validate=_text(labels.TAG_MAX_LENGTH)),
        validate=validate.Length(max=labels.MAX_TAGS),
        metadata={"description": "Short labels; GET /v1/jobs?tag= finds jobs by them."},
        **kwargs,
    )


def _metadata_field(**kwargs) -> fields.Dict:
    scalar = {
        "nullable": True,
        "oneOf": [
            {"type": "string", "maxLength": labels.METADATA_VALUE_MAX_LENGTH},
            {"type": "number"},
            {"type": "boolean"},
        ],
    }
    return fields.Dict(
        # Keys are checked after loading (_check_labels): OpenAPI 3.0 cannot bound them.
        keys=fields.String(),
        values=fields.Raw(allow_none=True, metadata=scalar),
        # labels.problems counts the keys; a Length here would be documented as maxLength.
        metadata={
            "maxProperties": labels.METADATA_MAX_KEYS,
            "description": "A flat object: keys of 1 to "
            f"{labels.METADATA_KEY_MAX_LENGTH} characters, values strings, numbers, booleans "
            "or null.",
        },
        **kwargs,
    )


class JobCreateSchema(Schema):
    """A training job: network, training settings, and data inline or as a dataset id."""

    class Meta:
        # one_data_source, as OpenAPI says it. The rules that tie data to the network (shapes,
        # loss against output activation, compute budget) are the engine's, past OpenAPI.
        openapi = {"oneOf": [{"required": ["data"]}, {"required": ["dataset_id"]}]}

    network = fields.Nested(NetworkSchema, required=True)
    training = fields.Nested(TrainingSchema, required=True)
    data = fields.Nested(DataSchema)
    dataset_id = fields.String(
        validate=IdValidator("dataset"),
        metadata={"description": "Train on an uploaded dataset (POST /v1/datasets), not data."},
    )
    preprocessing = fields.Nested(PreprocessingSchema)
    targets = fields.String(
        validate=validate.OneOf(TARGETS),
        metadata={
            "description": "values (the default): y as given. classes: y is one column of "
            "integer labels, one-hot encoded for a softmax output with one unit per class; "
            "predictions return the original labels."
        },
    )
    initial_weights = fields.List(fields.Nested(WeightsSchema), validate=validate.Length(min=1))
    initial_model_id = fields.String(
        validate=ModelRefValidator(),
        metadata={
            "description": "Warm start: begin from this trained model's weights (same layer "
            "sizes), given by id or alias (the job records the id). Not with initial_weights."
        },
    )
    keep_preprocessing = Bool(
        metadata={
            "description": "With initial_model_id: true (the default) keeps that model's "
            "standardisation statistics and class labels; false fits them on this job's data."
        }
    )
    callbacks = fields.List(
        fields.Nested(CallbackSchema),
        validate=validate.Length(max=MAX_CALLBACKS),
        metadata={
            "description": "Webhooks: a signed POST of the job to each url when it reaches one "
            "of its events. Needs the tenant's secret (POST /v1/webhooks/secret)."
        },
    )

    name = _name_field()
    tags = _tags_field()
    metadata = _metadata_field()

    @validates_schema
    def one_data_source(self, data, **kwargs):
        if "data" in data and "dataset_id" in data:
            raise ValidationError("Give data or dataset_id, not both.", "dataset_id")
        if "data" not in data and "dataset_id" not in data:
            raise ValidationError("Give data, or a dataset_id from POST /v1/datasets.", "data")

    @post_load
    def to_job(self, data, **kwargs):
        """``{"spec": normalised JSON-able spec, "arrays": {name: ndarray}, "dataset_id",
        "shape": data_shape of inline data (None for a dataset), "max_runtime_seconds",
        "callbacks": [{url, events}] with each event once}``.

        A dataset's shape is in Redis; the view checks the job against it with
        ``check_job_data``.
        """
        _check_labels(data)
        arrays = {}
        training = dict(data["training"])
        max_runtime = training.pop("max_runtime_seconds", None)
        validation = training.get("validation")
        if validation and "X" in validation:
            arrays["X_val"], arrays["y_val"] = validation["X"], validation["y"]
            training["validation"] = {"data": True}
        spec = {"network": data["network"], "training": training}
        for key in ("preprocessing", "targets", "initial_model_id", "keep_preprocessing"):
            if key in data:
                spec[key] = data[key]
        shape = None
        if data.get("initial_weights"):
            spec["initial_weights"] = True  # a stand-in, so normalize sees both warm starts
        try:
            spec = normalize(spec)
            spec.pop("initial_weights", None)
            if data.get("initial_weights"):
                pairs = [(w["W"], w["b"]) for w in data["initial_weights"]]
                spec["initial_weights"] = [{"W": W.tolist(), "b": b.tolist()} for W, b in pairs]
            if "data" in data:
                arrays["X"], arrays["y"] = data["data"]["X"], data["data"]["y"]
                shape = data_shape(spec, arrays["X"], arrays["y"])
                validation = (arrays["X_val"], arrays["y_val"]) if "X_val" in arrays else None
                check_job_data(spec, shape, validation, "data")
        except SpecError as exc:
            raise ValidationError({exc.path: [exc.message]}) from exc
        return {
            "spec": spec,
            "arrays": arrays,
            "dataset_id": data.get("dataset_id"),
            "shape": shape,
            "max_runtime_seconds": max_runtime,
            "name": data.get("name"),
            "tags": labels.unique_tags(data.get("tags")),
            "metadata": data.get("metadata") or {},
            "callbacks": [
                {"url": c["url"], "events": list(dict.fromkeys(c["events"]))}
                for c in data.get("callbacks", [])
            ],
        }


def _check_labels(data: dict) -> None:
    """name, tags and metadata within ``store.labels``'s bounds, errors by field path.

    Run after loading (post_load), with the rules OpenAPI cannot state: metadata keys.
    """
    errors = labels.problems(data.get("name"), data.get("tags"), data.get("metadata"))
    if errors:
        raise ValidationError(errors)


class JobPatchSchema(Schema):
    """PATCH /v1/jobs/{id}: the labels to change; null clears one, and {} changes nothing."""

    name = _name_field(allow_none=True)
    tags = _tags_field(allow_none=True)
    metadata = _metadata_field(allow_none=True)

    @post_load
    def cleared(self, data, **kwargs):
        """None as each field's empty value; tags each once."""
        _check_labels(data)
        if "tags" in data:
            data["tags"] = labels.unique_tags(data["tags"])
        if "metadata" in data:
            data["metadata"] = data["metadata"] or {}
        return data


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
    dataset_id = fields.String(allow_none=True)
    cancel_requested = fields.Boolean()
    max_runtime_seconds = fields.Float(allow_none=True)
    callbacks = fields.List(fields.Nested(CallbackSchema))
    name = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    metadata = fields.Dict()
    sweep_id = fields.String(allow_none=True, metadata={"description": "Its sweep, if a trial."})
    parameters = fields.Dict(
        allow_none=True, metadata={"description": "A trial's values, by spec path."}
    )


class JobSpecSchema(Schema):
    network = fields.Dict()
    training = fields.Dict()
    preprocessing = fields.Dict()
    targets = fields.String()
    has_initial_weights = fields.Boolean()
    initial_model_id = fields.String(
        metadata={"description": "The model it was warm-started from, if any."}
    )
    keep_preprocessing = fields.Boolean(
        metadata={
            "description": "With initial_model_id: whether that model's preprocessing was kept."
        }
    )
    dataset_id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    metadata = fields.Dict()


class JobQuerySchema(Schema):
    wait = fields.Float(
        validate=validate.Range(
            min=0,
            min_inclusive=False,
            max=MAX_WAIT_SECONDS,
            error=f"Must be more than 0 and at most {MAX_WAIT_SECONDS} seconds.",
        ),
        metadata={
            "description": "Long polling: answer as soon as the job has finished, failed or "
            f"been canceled, or after this many seconds (at most {MAX_WAIT_SECONDS}) with its "
            "state then."
        },
    )


class EventsHeadersSchema(Schema):
    last_event_id = fields.Integer(
        data_key="Last-Event-ID",
        load_default=0,
        validate=validate.Range(0, MAX_EPOCHS),
        metadata={
            "description": "The id of the last event received: the epochs of history already "
            "read. The stream sends the rows after it (EventSource sends it on reconnecting)."
        },
    )


IDEMPOTENCY_KEY_MAX = 200


class SubmitHeadersSchema(Schema):
    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Length(1, IDEMPOTENCY_KEY_MAX),
        metadata={
            "description": "The same key and body return the same job for 24 hours; the same "
            "key with another body answers 409."
        },
    )


class SubmitQuerySchema(Schema):
    dry_run = fields.Boolean(
        load_default=False, metadata={"description": "Validate and estimate; queue nothing."}
    )


class EstimateSchema(Schema):
    parameters = fields.Integer()
    flops_per_epoch = fields.Integer()
    total_flops = fields.Integer()
    weight_bytes = fields.Integer()
    memory_bytes = fields.Integer()


class LimitsSchema(Schema):
    max_parameters = fields.Integer()
    max_training_flops = fields.Float()
    max_training_memory_bytes = fields.Integer()


class DryRunSchema(Schema):
    valid = fields.Boolean()
    estimate = fields.Nested(EstimateSchema)
    limits = fields.Nested(LimitsSchema)


class PageQuerySchema(Schema):
    """A listing's page size; each listing adds its ``cursor`` (``page_cursor``)."""

    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


def page_cursor(kind: str) -> fields.String:
    """The cursor of a listing of ``kind`` records: the last id of the previous page."""
    # A well-formed cursor that names none of your records is a 422 naming the field, as an
    # unknown dataset_id in a job is: the request is well-formed but cannot be served, and
    # neither an empty page (which hides a client's bug) nor a 404 (the list exists) says so.
    return fields.String(
        validate=IdValidator(kind),
        metadata={
            "description": "The next_cursor of the previous page; one that names none of your "
            f"{kind}s is a 422."
        },
    )


class JobListQuerySchema(PageQuerySchema):
    cursor = page_cursor("job")


# What GET /v1/jobs sorts by: creation time, or a finished job's final loss or metric.
SORT_FIELDS = (
    "created_at",
    "final_loss",
    "val_loss",
    *dict.fromkeys(m for names in METRIC_NAMES.values() for m in names),
    *dict.fromkeys(f"val_{m}" for names in METRIC_NAMES.values() for m in names),
)


class JobSearchQuerySchema(JobListQuerySchema):
    """GET /v1/jobs: paging, filters (every one given must hold) and the order."""

    status = fields.String(validate=validate.OneOf([s.value for s in JobStatus]))
    tag = fields.List(
        fields.String(validate=validate.Length(1, labels.TAG_MAX_LENGTH)),
        metadata={"description": "Repeat it: jobs with every tag given."},
    )
    name = fields.String(
        validate=validate.Length(1, labels.NAME_MAX_LENGTH),
        metadata={"description": "Jobs whose name starts with this."},
    )
    dataset_id = fields.String(validate=IdValidator("dataset"))
    sweep_id = fields.String(validate=IdValidator("sweep"))
    created_after = fields.AwareDateTime(
        default_timezone=UTC, metadata={"description": "ISO 8601; exclusive; UTC when no zone."}
    )
    created_before = fields.AwareDateTime(
        default_timezone=UTC, metadata={"description": "ISO 8601; exclusive; UTC when no zone."}
    )
    sort = fields.String(
        load_default="-created_at",
        validate=validate.OneOf([f"{d}{f}" for f in SORT_FIELDS for d in ("", "-")]),
        metadata={
            "description": "created_at (oldest first) or -created_at (newest first, the "
            "default); final_loss or a final metric (-val_accuracy: highest first), over "
            "finished jobs only."
        },
    )


class JobListSchema(Schema):
    jobs = fields.List(fields.Nested(JobSchema))
    next_cursor = fields.String(allow_none=True)


class HistoryQuerySchema(Schema):
    offset = fields.Integer(
        load_default=0,
        # A job records at most one entry per epoch.
        validate=validate.Range(0, MAX_EPOCHS),
        metadata={"description": "Entries to skip: the epochs already read."},
    )
    limit = fields.Integer(
        load_default=HISTORY_PAGE_ROWS,
        validate=validate.Range(
            min=0,
            max=HISTORY_MAX_ROWS,
            error=f"Must be 0 to {HISTORY_MAX_ROWS:,} entries a page; read longer histories page "
            "by page with offset (a Link header names the next page).",
        ),
        metadata={
            "description": f"At most this many entries ({HISTORY_PAGE_ROWS:,} by default, "
            f"{HISTORY_MAX_ROWS:,} at most). When more are stored, a Link header "
            '(rel="next") names the next page.'
        },
    )


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
    classes = fields.List(
        fields.Integer(),
        allow_none=True,
        metadata={"description": 'targets "classes": the label of each output unit, in order.'},
    )
    name = fields.String(allow_none=True, metadata={"description": "Its job's name, as now."})
    tags = fields.List(fields.String(), metadata={"description": "Its job's tags, as now."})
    parent_id = fields.String(
        allow_none=True, metadata={"description": "The model it was warm-started from."}
    )
    lineage = fields.List(
        fields.String(),
        metadata={
            "description": "Its ancestors by warm start, parent first (at most "
            f"{LINEAGE_DEPTH}); some may have been deleted since."
        },
    )


class LayerWeightsSchema(Schema):
    W = fields.List(fields.List(fields.Float()))
    b = fields.List(fields.Float())


class PredictRequestSchema(Schema):
    # Documentation only: the view reads its body by hand (service.prediction.read_inputs).
    inputs = Matrix(
        required=True,
        metadata={
            "description": f"{RECTANGULAR} At most PREDICT_MAX_ROWS rows "
            f"({from_env({})['PREDICT_MAX_ROWS']:,} unless configured), as many columns as "
            "the model has inputs."
        },
    )


class PredictResponseSchema(Schema):
    outputs = fields.List(fields.List(fields.Float()))
    labels = fields.Raw(metadata={"description": "Classifiers only: argmax or 0.5 threshold."})


class DatasetUploadSchema(Schema):
    """A dataset as JSON: inputs X and targets y, row for row."""

    class Meta:
        openapi = {"description": "X and y have as many rows."}

    X = Matrix(required=True, max_rows=MAX_ROWS)
    y = Matrix(required=True, allow_vector=True, max_rows=MAX_ROWS)

    @validates_schema
    def same_rows(self, data, **kwargs):
        if len(data["X"]) != len(data["y"]):
            raise ValidationError(f"Has {len(data['y'])} rows; X has {len(data['X'])}.", "y")


class DatasetQuerySchema(Schema):
    # target with a JSON or .npz body stays a 422, although OpenAPI cannot tie a parameter to
    # the body's media type: those bodies name X and y themselves, so a target could only be
    # ignored (silently, when the client meant it) or contradict them. Unknown fields are
    # refused for the same reason.
    target = fields.List(
        fields.String(validate=validate.Length(1, 1000)),
        metadata={
            "description": "CSV: the target column names; .npy: their 0-based indices. "
            "Repeat the parameter or separate names with commas. A JSON or .npz body names "
            "X and y itself: target with one is a 422."
        },
    )
    dtype = fields.String(
        load_default="float64",
        validate=validate.OneOf(DTYPES),
        metadata={"description": "How the arrays are stored."},
    )


class DatasetSchema(Schema):
    id = fields.String()
    rows = fields.Integer()
    columns = fields.Integer(metadata={"description": "Input columns (the width of X)."})
    outputs = fields.Integer(metadata={"description": "Target columns (the width of y)."})
    dtype = fields.String()
    sha256 = fields.String(
        metadata={"description": "SHA-256 of the content: dtype, shapes, X and y bytes."}
    )
    created_at = fields.String()


class StatusSchema(Schema):
    status = fields.String()
    redis = fields.String()
    workers = fields.Integer()


class WebhookSecretSchema(Schema):
    secret = fields.String(
        metadata={
            "description": "Signs every webhook of this tenant from now on. Shown only in "
            "this answer: keep it."
        }
    )
    created_at = fields.String()


class WebhookSecretInfoSchema(Schema):
    created_at = fields.String()


class DeliveryAttemptSchema(Schema):
    attempt = fields.Integer()
    at = fields.String()
    status_code = fields.Integer(
        allow_none=True, metadata={"description": "The receiver's answer; null when none came."}
    )
    error = fields.String(
        allow_none=True, metadata={"description": "Why no answer came (refused, timeout, ...)."}
    )
    duration_ms = fields.Float()


class DeliverySchema(Schema):
    id = fields.String(metadata={"description": "Sent as delivery_id and X-Delivery-Id."})
    job_id = fields.String()
    event = fields.String(validate=validate.OneOf(EVENTS))
    url = fields.String()
    status = fields.String(validate=validate.OneOf([s.value for s in DeliveryStatus]))
    created_at = fields.String()
    ended_at = fields.String(allow_none=True)
    attempts = fields.List(fields.Nested(DeliveryAttemptSchema))


class DeliveryListSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliverySchema))


class AliasPutSchema(Schema):
    model_id = fields.String(
        required=True,
        validate=IdValidator("model"),
        metadata={"description": "A finished model of yours; the alias points at it from now."},
    )


class AliasMoveSchema(Schema):
    by = fields.String(metadata={"description": "The tenant that moved it."})
    key = fields.String(
        allow_none=True,
        metadata={"description": "The first 12 hex digits of the SHA-256 of the API key used."},
    )
    # "from" is a Python keyword.
    from_ = fields.String(
        attribute="from", data_key="from", allow_none=True, metadata={"description": "null: new."}
    )
    to = fields.String()
    at = fields.String()


class AliasSchema(Schema):
    name = fields.String()
    model_id = fields.String()
    history = fields.List(
        fields.Nested(AliasMoveSchema), metadata={"description": "Its moves, newest first."}
    )


class AliasEntrySchema(Schema):
    name = fields.String()
    model_id = fields.String()


class AliasListSchema(Schema):
    aliases = fields.List(fields.Nested(AliasEntrySchema))
