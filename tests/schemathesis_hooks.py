"""schemathesis hooks for tests/test_schemathesis.py: the documented exceptions to its checks.

1. ``positive_data_acceptance`` fails a request that openapi.yaml allows and the service
   refuses. OpenAPI 3.0 cannot state every rule: rectangular arrays, X and y with as many rows,
   rules between a job's data and its network (shapes, loss against output activation, the
   compute budget), a body's media type against a query parameter, the content of CSV and
   NumPy files, a metadata key's length and characters (3.0 has no propertyNames), what is
   stored (a cursor, dataset id or model id naming nothing, a model's input width), and that an
   alias name is not 32 hex digits (it would read as an id). A 422 for one of those is
   expected. The hook tells them apart with the request's own marshmallow schemas, not with
   the error message: when the schemas find nothing wrong (apart from ragged or unpaired
   arrays), the refusal came from a rule beyond OpenAPI and is dropped; when they do find
   something, openapi.yaml is looser than the service and it stands.
2. A URL longer than ``MAX_URL_BYTES`` is a 414 whatever the document allows (OpenAPI cannot
   bound a URL's bytes), in JSON from the app; past gunicorn's own request-line ceiling, in
   gunicorn's short HTML page, before the app sees the request.
"""

from urllib.parse import urlsplit

import schemathesis
from gunicorn.http.message import MAX_REQUEST_LINE
from marshmallow import EXCLUDE
from schemathesis.openapi.checks import RejectedPositiveData

from service.request_limits import MAX_URL_BYTES
from service.schemas import (
    AliasPutSchema,
    DatasetQuerySchema,
    DatasetUploadSchema,
    JobCreateSchema,
    JobPatchSchema,
    JobSearchQuerySchema,
    PredictRequestSchema,
    SubmitHeadersSchema,
    SubmitQuerySchema,
)
from service.sweep_schemas import SweepCreateSchema, SweepListQuerySchema

JSON = "application/json"
# The operations whose refusals may come from rules beyond OpenAPI, and the schemas of their
# parts. Every other operation must accept whatever its document allows.
REQUEST_SCHEMAS = {
    ("GET", "/v1/jobs"): {"query": JobSearchQuerySchema},
    ("GET", "/v1/sweeps"): {"query": SweepListQuerySchema},
    ("POST", "/v1/jobs"): {
        "body": JobCreateSchema,
        "query": SubmitQuerySchema,
        "headers": SubmitHeadersSchema,
    },
    ("PATCH", "/v1/jobs/{job_id}"): {"body": JobPatchSchema},
    ("POST", "/v1/datasets"): {"body": DatasetUploadSchema, "query": DatasetQuerySchema},
    ("POST", "/v1/models/{model_id}/predict"): {"body": PredictRequestSchema},
    ("PUT", "/v1/aliases/{name}"): {"body": AliasPutSchema},
    # Each trial is checked as a job, with its parameters set: past OpenAPI like a job's rules.
    ("POST", "/v1/sweeps"): {"body": SweepCreateSchema, "query": SubmitQuerySchema},
}
# Body fields whose own rules OpenAPI 3.0 cannot state, by operation: a sweep's parameter
# names are spec paths (3.0 has no propertyNames), a parameter takes values or a distribution
# with low < high, and max_trials and seed go with a distribution only.
BEYOND_OPENAPI_FIELDS = {("POST", "/v1/sweeps"): {"parameters", "max_trials", "seed", "job"}}
# Body fields that are a whole job: checked with JobCreateSchema's field rules alone, as
# POST /v1/jobs is (a nested schema's load would also run its post_load, the engine's rules).
NESTED_JOB_FIELDS = {("POST", "/v1/sweeps"): "job"}


def ragged_or_unpaired(value) -> bool:
    """Whether ``value`` holds a ragged array, or an object whose X and y differ in rows."""
    if isinstance(value, dict):
        X, y = value.get("X"), value.get("y")
        if isinstance(X, list) and isinstance(y, list) and len(X) != len(y):
            return True
        return any(ragged_or_unpaired(v) for v in value.values())
    if isinstance(value, list):
        rows = [len(row) for row in value if isinstance(row, list)]
        return len(set(rows)) > 1 or any(ragged_or_unpaired(v) for v in value)
    return False


def schemas_find_fault(case, parts: dict) -> bool:
    """Whether the request's marshmallow schemas refuse it (field rules and validates_schema;
    not post_load, where the engine's rules between data and network run), apart from the
    fields of ``BEYOND_OPENAPI_FIELDS``."""
    beyond = BEYOND_OPENAPI_FIELDS.get((case.method.upper(), case.operation.path), set())
    for location, schema in parts.items():
        if location == "body":
            # Only JSON has a schema: CSV and NumPy content are past OpenAPI's "type: string".
            if case.media_type == JSON and set(schema().validate(case.body)) - beyond:
                return True
            nested = NESTED_JOB_FIELDS.get((case.method.upper(), case.operation.path))
            job = case.body.get(nested) if nested and isinstance(case.body, dict) else None
            if isinstance(job, dict) and JobCreateSchema().validate(job):
                return True
        elif schema(unknown=EXCLUDE).validate(dict(getattr(case, location) or {})):
            return True
    return False


def refused_beyond_openapi(failure, case, response) -> bool:
    """Exception 1: a positive case refused for a rule OpenAPI cannot state."""
    parts = REQUEST_SCHEMAS.get((case.method.upper(), case.operation.path))
    if not isinstance(failure, RejectedPositiveData) or parts is None:
        return False
    if response.status_code != 422:
        return False
    if case.media_type == JSON and ragged_or_unpaired(case.body):
        return True
    return not schemas_find_fault(case, parts)


def url_too_long(response) -> bool:
    """Exception 2: a 414 for a URL over the limit; HTML only past gunicorn's ceiling."""
    if response.status_code != 414:
        return False
    url = urlsplit(response.request.url)
    target = len(url.path) + (len(url.query) + 1 if url.query else 0)
    line = len(response.request.method) + 1 + target + len(" HTTP/1.1")
    html = "text/html" in ",".join(response.headers.get("content-type", []))
    return line > MAX_REQUEST_LINE if html else target > MAX_URL_BYTES


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure but the documented exceptions above."""
    return not (refused_beyond_openapi(failure, case, response) or url_too_long(response))
