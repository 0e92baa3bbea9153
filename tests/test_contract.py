"""The contract: openapi.yaml is as strict as the schemas wherever OpenAPI 3.0 can say it, and the
live server (gunicorn and all) answers errors as HTTP and the one JSON error body say.

The document side is checked against the marshmallow schemas the service loads requests with;
the HTTP side against a real gunicorn.
"""

import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from marshmallow import ValidationError, class_registry, fields
from openapi_schema_validator import OAS30Validator

from service.models import WeightsQuerySchema
from service.request_limits import MAX_HEADER_FIELD_BYTES, MAX_URL_BYTES
from service.schemas import (
    IDEMPOTENCY_KEY_MAX,
    DatasetQuerySchema,
    HistoryQuerySchema,
    JobSearchQuerySchema,
    SubmitHeadersSchema,
    SubmitQuerySchema,
)
from tests.support.checks import assert_error
from tests.support.jobs import GOOD_JOB

ROOT = Path(__file__).resolve().parent.parent
DOC = yaml.safe_load((ROOT / "openapi.yaml").read_text())
COMPONENTS = DOC["components"]["schemas"]
ID = "0" * 32


def doc_accepts(component: str, value) -> bool:
    """Whether openapi.yaml's component ``component`` allows ``value``."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": DOC["components"]}
    return OAS30Validator(schema).is_valid(value)


def schema_of(component: str):
    """The marshmallow schema a document component was written from (``Init`` → InitSchema)."""
    return class_registry.get_class(f"{component}Schema")()


def request_components() -> list[str]:
    """Every component a request body refers to, directly or nested."""
    found, stack = set(), []
    for operations in DOC["paths"].values():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            content = operation.get("requestBody", {}).get("content", {})
            stack.extend(media["schema"] for media in content.values())
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rsplit("/", 1)[-1]
            if ref and name not in found:
                found.add(name)
                stack.append(COMPONENTS[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(found)


def accepts(field: fields.Field, value) -> bool:
    try:
        field.deserialize(value)
    except ValidationError:
        return False
    return True


def numeric_bounds():
    """``(where, field, bound, exclusive)`` for every minimum and maximum of a request
    component's property or an operation's parameter."""
    for name in request_components():
        schema = schema_of(name)
        for prop, spec in COMPONENTS[name].get("properties", {}).items():
            yield from _bounds(f"{name}.{prop}", schema.fields[prop], spec)
    for (path, method), classes in PARAMETER_SCHEMAS.items():
        by_name = {f.data_key or n: f for c in classes for n, f in c().fields.items()}
        for parameter in DOC["paths"][path][method].get("parameters", []):
            spec = parameter["schema"]
            yield from _bounds(
                f"{method} {path} {parameter['name']}", by_name[parameter["name"]], spec
            )


def _bounds(where, field, spec):
    for key in ("minimum", "maximum"):
        if key in spec:
            exclusive = spec.get("exclusive" + key.capitalize(), False)
            yield pytest.param(field, spec[key], exclusive, id=f"{where}.{key}")


PARAMETER_SCHEMAS = {
    ("/v1/jobs", "get"): [JobSearchQuerySchema],
    ("/v1/jobs", "post"): [SubmitQuerySchema, SubmitHeadersSchema],
    ("/v1/jobs/{job_id}/history", "get"): [HistoryQuerySchema],
    ("/v1/datasets", "post"): [DatasetQuerySchema],
    ("/v1/models/{model_id}/weights", "get"): [WeightsQuerySchema],
}


@pytest.mark.parametrize(("field", "bound", "exclusive"), list(numeric_bounds()))
def test_a_documented_bound_is_in_or_out_as_the_document_says(field, bound, exclusive):
    value = int(bound) if isinstance(field, fields.Integer) else bound
    assert accepts(field, value) is not exclusive


def test_the_bounds_cover_the_fields_that_have_them():
    # The walk above must reach the request components; an empty walk would pass vacuously.
    assert {"JobCreate", "Optimizer", "Init", "Schedule", "Weights"} <= set(request_components())


JOB = {
    "network": {"layers": [{"units": 1, "activation": "sigmoid"}]},
    "training": {"loss": "mse", "optimizer": {"name": "sgd"}},
    "data": {"X": [[0.0]], "y": [[0.0]]},
}
TRAINING = JOB["training"]
REFUSED = [
    ("Init", {"scheme": "normal", "std": 0}),
    ("Layer", {"units": 1, "activation": "elu", "alpha": 0}),
    ("Optimizer", {"name": "sgd", "learning_rate": 0}),
    ("Optimizer", {"name": "adam", "epsilon": 0.0}),
    ("Optimizer", {"name": "sgd", "momentum": 1}),
    ("Optimizer", {"name": "adam", "beta_1": 1.0}),
    ("Optimizer", {"name": "rmsprop", "rho": 1.0}),
    ("Optimizer", {"name": "sgd", "weight_decay": 10**400}),
    ("Schedule", {"name": "step", "gamma": 0}),
    ("Training", {**TRAINING, "huber_delta": 0}),
    ("Training", {**TRAINING, "max_runtime_seconds": 0}),
    ("Training", {**TRAINING, "validation": {"folds": 3}}),
    ("Training", {**TRAINING, "early_stopping": {"patience": 1, "wait": 2}}),
    ("ValidationSet", {"fraction": 1.0}),
    ("ValidationSet", {"fraction": 0.5, "X": [[0.0]]}),
    ("ValidationSet", {"X": [[0.0]]}),
    ("JobCreate", {**JOB, "dataset_id": ID}),
    ("JobCreate", {k: v for k, v in JOB.items() if k != "data"}),
    ("Data", {"X": [], "y": []}),
    ("Data", {"X": [[]], "y": [[0.0]]}),
    ("DatasetUpload", {"X": [], "y": [0.0]}),
    ("Weights", {"W": [[0.0]], "b": []}),
    ("PredictRequest", {"inputs": []}),
    ("PredictRequest", {"inputs": [[]]}),
]


@pytest.mark.parametrize(("component", "value"), REFUSED)
def test_the_document_refuses_what_the_schemas_refuse(component, value):
    assert schema_of(component).validate(value)  # the service refuses it...
    assert not doc_accepts(component, value)  # ...and the document says so


ACCEPTED = [
    ("Optimizer", {"name": "sgd", "learning_rate": 10, "momentum": 0}),
    ("Training", {**TRAINING, "validation": None, "early_stopping": None}),
    ("Training", {**TRAINING, "validation": {"fraction": 0.25}}),
    ("ValidationSet", {"X": [[0.0]], "y": [1.0]}),
    ("JobCreate", JOB),
    ("JobCreate", {k: v for k, v in JOB.items() if k != "data"} | {"dataset_id": ID}),
    ("DatasetUpload", {"X": [[0.0], [1.0]], "y": [0.0, 1.0]}),
]


@pytest.mark.parametrize(("component", "value"), ACCEPTED)
def test_the_document_allows_what_the_schemas_allow(component, value):
    assert not schema_of(component).validate(value)
    assert doc_accepts(component, value)


def test_the_rules_past_openapi_are_stated_in_words():
    target = next(
        p for p in DOC["paths"]["/v1/datasets"]["post"]["parameters"] if p["name"] == "target"
    )
    assert "JSON" in target["description"] and "422" in target["description"]
    jobs = DOC["paths"]["/v1/jobs"]["get"]
    cursor = next(p for p in jobs["parameters"] if p["name"] == "cursor")
    assert "422" in cursor["description"]
    assert "cursor" in jobs["responses"]["422"]["description"]
    assert "Rectangular" in COMPONENTS["PredictRequest"]["properties"]["inputs"]["description"]


# -- the live server -------------------------------------------------------------------------


def documented_routes():
    for path, operations in DOC["paths"].items():
        methods = {m.upper() for m in operations if m != "parameters"}
        yield pytest.param(
            path.replace("{job_id}", ID)
            .replace("{model_id}", ID)
            .replace("{dataset_id}", ID)
            .replace("{sweep_id}", ID),
            methods,
            id=path,
        )


@pytest.mark.parametrize(("url", "documented"), list(documented_routes()))
def test_a_405_lists_the_methods_the_route_has(module_live_server, url, documented):
    response = requests.request("TRACE", module_live_server + url, timeout=10)
    assert_error(response, 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed - {"HEAD", "OPTIONS"} == documented


def test_a_bodyless_put_is_405_not_415(module_live_server):
    response = requests.put(f"{module_live_server}/v1/jobs/{ID}", timeout=10)
    assert_error(response, 405)
    assert "GET" in response.headers["Allow"]


def raw_get(base_url: str, target: str, headers: dict | None = None):
    """GET ``target`` exactly as given (no re-encoding), over one connection: (status,
    content type, body)."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("GET", target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def test_a_url_over_the_limit_is_a_json_414(module_live_server):
    target = "/v1/jobs?cursor=" + "a" * MAX_URL_BYTES
    status, content_type, body = raw_get(module_live_server, target)
    assert (status, content_type) == (414, "application/json")
    assert json.loads(body)["code"] == 414


def test_a_url_at_the_limit_reaches_the_view(module_live_server):
    target = "/v1/jobs?limit=5&pad=" + "a" * (MAX_URL_BYTES - len("/v1/jobs?limit=5&pad="))
    status, content_type, _ = raw_get(module_live_server, target)
    assert (status, content_type) == (200, "application/json")


def test_a_header_over_the_limit_is_a_json_431(module_live_server):
    headers = {"X-Padding": "a" * MAX_HEADER_FIELD_BYTES}
    status, content_type, body = raw_get(module_live_server, "/healthz", headers)
    assert (status, content_type) == (431, "application/json")
    assert json.loads(body)["code"] == 431


@pytest.mark.parametrize(
    ("target", "headers", "status"),
    [
        ("/v1/jobs?cursor=" + "a" * 9000, None, 414),
        ("/healthz", {"X-Padding": "a" * (4 * MAX_HEADER_FIELD_BYTES)}, 431),
    ],
    ids=["request line over 8190 bytes", "header field over gunicorn's limit"],
)
def test_past_gunicorns_ceilings_its_answer_stays_small(
    module_live_server, target, headers, status
):
    # The documented exception: gunicorn refuses these before the app sees them, in HTML.
    got, content_type, body = raw_get(module_live_server, target, headers)
    assert (got, content_type) == (status, "text/html")
    assert len(body) < 512


@pytest.mark.parametrize("key", ["", "k" * (IDEMPOTENCY_KEY_MAX + 1)])
def test_a_bad_idempotency_key_is_refused_before_a_dry_run(module_live_server, redis_url, key):
    response = requests.post(
        f"{module_live_server}/v1/jobs?dry_run=true",
        json=GOOD_JOB,
        headers={"Idempotency-Key": key},
        timeout=10,
    )
    assert "Idempotency-Key" in assert_error(response, 422)["errors"]


def test_a_cursor_naming_no_job_is_a_422_naming_it(module_live_server, redis_url):
    # Decided and documented: well-formed but unknown, as an unknown dataset_id in a job.
    response = requests.get(f"{module_live_server}/v1/jobs", params={"cursor": ID}, timeout=10)
    assert list(assert_error(response, 422)["errors"]) == ["cursor"]
