"""What the OpenAPI document says beyond apispec's defaults, and ``python -m service.openapi``,
which prints the document as YAML.

apispec leaves out some of what the schemas enforce (whether a Range's bounds are inclusive,
that a null-or-object field takes only null or that object, that numbers are finite, rules
between fields), and flask-smorest has no place for response links. ``ContractPlugin`` adds
them once, for every field and schema, so the document is as strict as the service wherever
OpenAPI 3.0 can say it.
"""

import sys

import yaml
from apispec import BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from marshmallow import validate

from .fields import FINITE, Number

# OpenAPI links from a response to the operations that take what it returns, so that clients
# (and schemathesis' stateful tests) can follow a created resource. A model's id is its job's id.
ID = "$response.body#/id"
LINKS = {
    ("/v1/jobs", "post", "202"): {
        "GetJob": ("/v1/jobs/{job_id}", "get", {"job_id": ID}),
        "CancelJob": ("/v1/jobs/{job_id}", "delete", {"job_id": ID}),
        "GetHistory": ("/v1/jobs/{job_id}/history", "get", {"job_id": ID}),
        "GetModel": ("/v1/models/{model_id}", "get", {"model_id": ID}),
    },
    ("/v1/jobs/{job_id}", "get", "200"): {
        "GetModel": ("/v1/models/{model_id}", "get", {"model_id": "$response.body#/model_id"}),
    },
    ("/v1/models/{model_id}", "get", "200"): {
        "GetWeights": ("/v1/models/{model_id}/weights", "get", {"model_id": ID}),
        "GetOnnx": ("/v1/models/{model_id}/onnx", "get", {"model_id": ID}),
        "Predict": ("/v1/models/{model_id}/predict", "post", {"model_id": ID}),
        "DeleteModel": ("/v1/models/{model_id}", "delete", {"model_id": ID}),
    },
}
for _status in ("200", "201"):  # a new dataset, or the same content uploaded again
    LINKS["/v1/datasets", "post", _status] = {
        "GetDataset": ("/v1/datasets/{dataset_id}", "get", {"dataset_id": ID}),
        "DeleteDataset": ("/v1/datasets/{dataset_id}", "delete", {"dataset_id": ID}),
    }


def operation_ref(path: str, method: str) -> str:
    """``#/paths/~1v1~1jobs~1{job_id}/get``: a JSON pointer to an operation of this document."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def exclusive_bounds(converter, field, ret, **kwargs) -> dict:
    """``Range(min_inclusive=False)`` as ``exclusiveMinimum: true`` (and the same for max):
    apispec writes a Range's bounds but not whether they are inclusive."""
    out = {}
    for validator in field.validators:
        if not isinstance(validator, validate.Range):
            continue
        for bound, inclusive, key in (
            ("minimum", validator.min_inclusive, "exclusiveMinimum"),
            ("maximum", validator.max_inclusive, "exclusiveMaximum"),
        ):
            value = getattr(validator, bound[:3])
            if value is None or inclusive or ret.get(bound) != value:
                continue
            out[key] = True  # OpenAPI 3.0's form (3.1 would take the bound itself)
    return out


def finite_bounds(converter, field, ret, **kwargs) -> dict:
    """A ``Number`` is finite: bounded by float64's range where no Range bounds it already."""
    if not isinstance(field, Number):
        return {}
    return {key: FINITE[key] for key in ("minimum", "maximum") if key not in ret}


def null_or_ref(converter, field, ret, **kwargs) -> dict:
    """A nullable nested object is null or that object. apispec writes OpenAPI 3.0's
    ``anyOf: [{type: object, nullable: true}, {$ref}]``, whose first branch takes any object."""
    branches = ret.get("anyOf")
    if not field.allow_none or not branches:
        return {}
    only_null = {"type": "object", "nullable": True, "enum": [None]}
    loose = {"type": "object", "nullable": True}
    return {"anyOf": [only_null if branch == loose else branch for branch in branches]}


class ContractPlugin(BasePlugin):
    """apispec plugin: the field functions above, rules between fields, response links.

    A schema states its rules between fields, as OpenAPI says them, in ``Meta.openapi``
    (e.g. ``{"oneOf": [...]}``), next to the ``validates_schema`` that enforces them.
    """

    def init_spec(self, spec) -> None:
        super().init_spec(spec)
        (ma_plugin,) = (p for p in spec.plugins if isinstance(p, MarshmallowPlugin))
        converter = ma_plugin.converter
        for function in (exclusive_bounds, finite_bounds, null_or_ref):
            converter.add_attribute_function(function)

    def schema_helper(self, name, definition, schema=None, **kwargs) -> dict | None:
        if schema is None:
            return None
        meta = getattr(resolve_schema_cls(schema), "Meta", None)
        return getattr(meta, "openapi", None)

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        for method, operation in (operations or {}).items():
            for status, response in operation.get("responses", {}).items():
                links = LINKS.get((path, method, str(status)))
                if links and isinstance(response, dict):
                    response["links"] = {
                        name: {"operationRef": operation_ref(target, verb), "parameters": params}
                        for name, (target, verb, params) in links.items()
                    }


def document() -> dict:
    """The OpenAPI document of the app, as a dict."""
    from . import create_app  # the app factory imports this module

    app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0"})  # never contacted
    return app.extensions["api"].spec.to_dict()


def main() -> None:
    yaml.safe_dump(document(), sys.stdout, sort_keys=True, allow_unicode=True)


if __name__ == "__main__":
    main()
