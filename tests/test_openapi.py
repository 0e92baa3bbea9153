"""openapi.yaml is what the code generates, it is a valid OpenAPI document, and it documents
every endpoint other services rely on.
"""

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILE = ROOT / "openapi.yaml"
PATHS = [
    "/v1/jobs",
    "/v1/jobs/{job_id}",
    "/v1/jobs/{job_id}/history",
    "/v1/models/{model_id}",
    "/v1/models/{model_id}/weights",
    "/v1/models/{model_id}/predict",
    "/v1/models/{model_id}/onnx",
    "/healthz",
    "/readyz",
]


@pytest.fixture(scope="module")
def document() -> dict:
    return yaml.safe_load(SPEC_FILE.read_text())


def test_checked_in_file_is_what_the_code_generates():
    result = subprocess.run(
        ["make", "--no-print-directory", "openapi-check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_file_is_a_valid_openapi_document(document):
    validate(document)
    assert document["openapi"].startswith("3.")


@pytest.mark.parametrize("path", PATHS)
def test_endpoint_is_documented(document, path):
    assert path in document["paths"]


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/v1/jobs", "post", "202"),
        ("/v1/jobs", "post", "422"),
        ("/v1/jobs", "get", "200"),
        ("/v1/models/{model_id}/predict", "post", "200"),
        ("/readyz", "get", "503"),
    ],
)
def test_response_is_documented(document, path, method, status):
    assert status in document["paths"][path][method]["responses"]


@pytest.mark.parametrize(
    ("path", "method", "status", "names"),
    [
        ("/v1/jobs", "post", "202", {"GetJob", "CancelJob", "GetHistory", "GetModel"}),
        ("/v1/datasets", "post", "201", {"GetDataset", "DeleteDataset"}),
        ("/v1/datasets", "post", "200", {"GetDataset", "DeleteDataset"}),
        ("/v1/models/{model_id}", "get", "200", {"Predict", "GetWeights", "DeleteModel"}),
    ],
)
def test_a_created_resource_is_linked_to_its_operations(document, path, method, status, names):
    assert names <= set(document["paths"][path][method]["responses"][status]["links"])


def test_every_link_names_an_operation_and_fills_its_path(document):
    links = [
        link
        for operations in document["paths"].values()
        for method, operation in operations.items()
        if method != "parameters"
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert links
    for link in links:
        ref = link["operationRef"]
        assert ref.startswith("#/paths/")
        path, method = ref[len("#/paths/") :].rsplit("/", 1)
        path = path.replace("~1", "/").replace("~0", "~")
        assert method in document["paths"][path], ref
        assert set(link["parameters"]) == set(re.findall(r"{(\w+)}", path)), ref
        for expression in link["parameters"].values():
            assert expression.startswith("$response.body#/"), ref
