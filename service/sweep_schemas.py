"""Request and response schemas of ``/v1/sweeps``. The base job is ``JobCreateSchema``'s; what
a sweep adds (its parameters, objective, cap and stopping rule) is checked here, and every
trial again as a job by ``service.sweeping``."""

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from backprop.metrics import METRIC_NAMES, higher_is_better
from store import JobStatus

from .fields import Number
from .schemas import (
    ErrorInfoSchema,
    EstimateSchema,
    JobCreateSchema,
    LimitsSchema,
    PageQuerySchema,
    page_cursor,
)
from .sweeping import DISTRIBUTIONS, PATH

# The history columns an objective may name: loss, every metric, and their val_ twins.
_NAMES = ("loss", *dict.fromkeys(m for names in METRIC_NAMES.values() for m in names))
OBJECTIVE_METRICS = (*_NAMES, *(f"val_{name}" for name in _NAMES))
GOALS = ("min", "max")
# Each parameter's list of values (a grid's axis, or a choice).
MAX_VALUES = 1000
MAX_PARAMETERS = 32
# Other trials that must have reached an epoch before the median rule compares a trial there:
# the median of one other trial would stop the worse of every pair.
MEDIAN_MIN_TRIALS = 2
MEDIAN_MIN_EPOCHS = 10


class BaseJob(fields.Nested):
    """The base job: checked as ``POST /v1/jobs`` checks a job, kept as sent, since each trial
    sets its parameters in the request's JSON and is checked again."""

    def __init__(self, **kwargs):
        super().__init__(JobCreateSchema, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        super()._deserialize(value, attr, data, **kwargs)
        return value


class Parameters(fields.Dict):
    """``{path: parameter}``, its errors keyed ``<path>.<field>`` (marshmallow's Dict puts
    them under ``<path>.key`` and ``<path>.value``)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as exc:
            if not isinstance(exc.messages, dict):
                raise
            messages = {}
            for key, errors in exc.messages.items():
                if not isinstance(errors, dict):
                    messages[key] = errors
                    continue
                own = errors.get("key") or []
                nested = errors.get("value") or {}
                if isinstance(nested, dict):  # the parameter's fields
                    messages[key] = {**({"_schema": own} if own else {}), **nested}
                else:  # the parameter itself: not an object, or null
                    messages[key] = own + list(nested)
            raise ValidationError(messages) from exc


class ParameterSchema(Schema):
    """``{"values": [...]}`` (a grid axis, or a choice in a random search), or a
    ``distribution``: ``uniform``/``log_uniform``/``int_uniform`` over ``[low, high]``, or
    ``choice`` of ``values``."""

    values = fields.List(fields.Raw(allow_none=True), validate=validate.Length(1, MAX_VALUES))
    distribution = fields.String(validate=validate.OneOf(DISTRIBUTIONS))
    low = Number()
    high = Number()

    @validates_schema
    def one_kind(self, data, **kwargs):
        kind = data.get("distribution")
        if kind in (None, "choice"):
            if "values" not in data:
                message = "Give values (or a distribution with low and high)."
                raise ValidationError(message, "values")
            for name in ("low", "high"):
                if name in data:
                    raise ValidationError("Only with uniform, log_uniform or int_uniform.", name)
            return
        if "values" in data:
            raise ValidationError(f"{kind} takes low and high, not values.", "values")
        for name in ("low", "high"):
            if name not in data:
                raise ValidationError(f"{kind} needs {name}.", name)
        low, high = data["low"], data["high"]
        if not low < high:
            raise ValidationError("Must be greater than low.", "high")
        if kind == "log_uniform" and low <= 0:
            raise ValidationError("log_uniform needs low > 0.", "low")
        if kind == "int_uniform":
            for name in ("low", "high"):
                if data[name] != int(data[name]):
                    raise ValidationError("int_uniform needs whole numbers.", name)


class ObjectiveSchema(Schema):
    metric = fields.String(
        load_default="val_loss",
        validate=validate.OneOf(OBJECTIVE_METRICS),
        metadata={"description": "A history column of every trial (val_loss by default)."},
    )
    goal = fields.String(
        validate=validate.OneOf(GOALS),
        metadata={"description": "max for accuracy and r2, min for the others, by default."},
    )

    @post_load
    def default_goal(self, data, **kwargs):
        data.setdefault("goal", "max" if higher_is_better(data["metric"]) else "min")
        return data


class MedianStoppingSchema(Schema):
    rule = fields.String(required=True, validate=validate.OneOf(["median"]))
    min_epochs = fields.Integer(
        strict=True,
        load_default=MEDIAN_MIN_EPOCHS,
        validate=validate.Range(min=1),
        metadata={"description": "No trial is stopped before this epoch."},
    )
    min_trials = fields.Integer(
        strict=True,
        load_default=MEDIAN_MIN_TRIALS,
        validate=validate.Range(min=1),
        metadata={"description": "Other trials that must have reached the epoch compared."},
    )


class SweepCreateSchema(Schema):
    """A sweep: a base job and the values of its parameters to train it with."""

    job = BaseJob(
        required=True,
        metadata={"description": "The base job, as POST /v1/jobs takes it (data or dataset_id)."},
    )
    parameters = Parameters(
        keys=fields.String(
            validate=validate.Regexp(
                f"^{PATH.pattern}$",
                error="Not a spec path such as training.optimizer.learning_rate or "
                "network.layers[0].units.",
            )
        ),
        values=fields.Nested(ParameterSchema),
        required=True,
        validate=validate.Length(1, MAX_PARAMETERS),
        metadata={
            "description": "Spec path (such as training.optimizer.learning_rate or "
            "network.layers[0].units, under network, training, preprocessing or targets) -> "
            "{values} (grid) or a distribution (random).",
            "minProperties": 1,
            "maxProperties": MAX_PARAMETERS,
        },
    )
    objective = fields.Nested(ObjectiveSchema, load_default=lambda: ObjectiveSchema().load({}))
    parallel = fields.Integer(
        strict=True,
        load_default=1,
        validate=validate.Range(min=1),
        metadata={"description": "The most trials queued or started at once."},
    )
    max_trials = fields.Integer(
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "Random search: how many trials to draw."},
    )
    seed = fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(0, 2**32 - 1),
        metadata={"description": "Random search: the same seed draws the same trials."},
    )
    early_stopping = fields.Nested(MedianStoppingSchema, allow_none=True)

    @validates_schema
    def random_or_grid(self, data, **kwargs):
        parameters = data.get("parameters") or {}
        random = any("distribution" in p for p in parameters.values())
        if random and "max_trials" not in data:
            message = "A random search (a distribution) needs max_trials."
            raise ValidationError(message, "max_trials")
        for name in ("max_trials", "seed"):
            if not random and data.get(name) is not None:
                raise ValidationError("Only for a random search (a distribution).", name)


class TrialSchema(Schema):
    index = fields.Integer()
    job_id = fields.String()
    parameters = fields.Dict()
    status = fields.String(allow_none=True, validate=validate.OneOf([s.value for s in JobStatus]))
    epochs = fields.Integer(metadata={"description": "Epochs of history recorded."})
    objective_value = fields.Float(
        allow_none=True, metadata={"description": "The best value of the metric over its epochs."}
    )
    error = fields.Nested(ErrorInfoSchema, allow_none=True)


class SweepSchema(Schema):
    id = fields.String()
    status = fields.String(validate=validate.OneOf(["running", "finished", "canceled"]))
    created_at = fields.String()
    method = fields.String(validate=validate.OneOf(["grid", "random"]))
    seed = fields.Integer(allow_none=True)
    max_trials = fields.Integer(allow_none=True)
    parameters = fields.Dict()
    objective = fields.Nested(ObjectiveSchema)
    parallel = fields.Integer()
    early_stopping = fields.Nested(MedianStoppingSchema, allow_none=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    best_trial = fields.Nested(TrialSchema, allow_none=True)
    trials = fields.List(fields.Nested(TrialSchema))


class SweepDryRunSchema(Schema):
    valid = fields.Boolean()
    trials = fields.Integer()
    estimate = fields.Nested(EstimateSchema, metadata={"description": "Summed over the trials."})
    limits = fields.Nested(LimitsSchema)


class SweepListQuerySchema(PageQuerySchema):
    cursor = page_cursor("sweep")


class SweepSummarySchema(Schema):
    id = fields.String()
    created_at = fields.String()
    method = fields.String(validate=validate.OneOf(["grid", "random"]))
    trials = fields.Integer(metadata={"description": "How many trials it has."})
    parallel = fields.Integer()
    objective = fields.Nested(ObjectiveSchema)
    canceled = fields.Boolean()


class SweepListSchema(Schema):
    sweeps = fields.List(fields.Nested(SweepSummarySchema))
    next_cursor = fields.String(allow_none=True)
