"""Views declare themselves open (no key, no rate limit) or raw-bodied where they are defined.

The real app with keys, against the real Redis of the session, through Flask's test client.
"""

import flask
import pytest
from flask.views import MethodView

from service import auth, endpoints, errors
from service.endpoints import open_endpoint, raw_body
from tests.support.auth import bearer, keyed_app

DOC_PAGES = {
    "OPENAPI_SWAGGER_UI_PATH": "swagger",
    "OPENAPI_SWAGGER_UI_URL": "https://cdn.example/swagger-ui/",
    "OPENAPI_REDOC_PATH": "redoc",
    "OPENAPI_REDOC_URL": "https://cdn.example/redoc.js",
    "OPENAPI_RAPIDOC_PATH": "rapidoc",
    "OPENAPI_RAPIDOC_URL": "https://cdn.example/rapidoc.js",
}


def declared(app: flask.Flask, mark: str) -> set[str]:
    return {name for name, view in app.view_functions.items() if endpoints.declares(view, mark)}


def test_the_service_declares_what_it_listed_before(redis_url):
    app = keyed_app(redis_url, **DOC_PAGES)

    probes = {"health.Health", "health.Ready", "inference.ServerLive", "inference.ServerReady"}
    docs = {"api-docs.openapi_json", "api-docs.openapi_redoc", "api-docs.openapi_swagger_ui"}
    page = {"dashboard.page", "dashboard.config", "dashboard.static", "dashboard.favicon"}
    assert declared(app, endpoints.OPEN) == probes | docs | {"api-docs.openapi_rapidoc"} | page
    raw = {"datasets.Datasets", "inference.ModelInfer", "webhooks.WebhookSecret"}  # no body
    assert declared(app, endpoints.RAW_BODY) == raw
    # No module-level lists left for a view to add itself to at import time.
    assert not hasattr(auth, "OPEN_ENDPOINTS")
    assert not hasattr(errors, "RAW_BODY_ENDPOINTS")


def test_open_routes_answer_without_a_key_and_the_rest_do_not(redis_url):
    client = keyed_app(redis_url, **DOC_PAGES).test_client()

    for url in ("/healthz", "/v2/health/live", "/openapi.json", "/swagger", "/redoc", "/rapidoc"):
        assert client.get(url).status_code == 200, url
    assert client.get("/readyz").status_code == 503  # no worker runs: open, and not ready
    assert client.get("/v2/health/ready").status_code == 200
    model = "/v2/models/0123456789abcdef0123456789abcdef"
    for url in ("/v1/jobs", "/v1/datasets/0123456789abcdef0123456789abcdef", "/v2", model):
        assert client.get(url).status_code == 401, url
    assert client.post(f"{model}/infer", data=b"{}").status_code == 401


class OpenView(MethodView):
    def get(self):
        return {"view": "open class"}


class Subclass(OpenView):
    """Not declared itself, so not open: a mark is not inherited."""


def extra_blueprint() -> flask.Blueprint:
    """A blueprint the service does not have: function and class views, declared or not."""
    bp = flask.Blueprint("extra", __name__, url_prefix="/extra")

    @open_endpoint
    @bp.get("/open")
    def open_function():
        return {"view": "open function"}

    @bp.get("/closed")
    def closed():
        return {"view": "closed"}

    @bp.post("/raw")
    @raw_body
    def raw():
        return {"mimetype": request_mimetype()}

    @bp.post("/json")
    def json_only():
        return {"mimetype": request_mimetype()}

    bp.add_url_rule("/open-class", view_func=open_endpoint(OpenView).as_view("OpenView"))
    bp.add_url_rule("/subclass", view_func=Subclass.as_view("Subclass"))
    return bp


def request_mimetype() -> str:
    return flask.request.mimetype


@pytest.fixture
def client(redis_url):
    app = keyed_app(redis_url, RATE_LIMIT="2/minute")
    app.register_blueprint(extra_blueprint())
    return app.test_client()


def test_a_view_declared_open_needs_no_key_and_no_rate_limit(client):
    for url in ("/extra/open", "/extra/open-class"):
        codes = [client.get(url).status_code for _ in range(3)]
        assert codes == [200, 200, 200], url  # past RATE_LIMIT, with no key
    for url in ("/extra/closed", "/extra/subclass"):
        assert client.get(url).status_code == 401, url
        codes = [client.get(url, headers=bearer("alice")).status_code for _ in range(3)]
        assert codes == [200, 200, 429], url


def test_a_view_declared_raw_receives_bodies_that_are_not_json(client):
    csv = {"data": "a,b\n1,2\n", "content_type": "text/csv", "headers": bearer("alice")}

    raw = client.post("/extra/raw", **csv)
    assert raw.status_code == 200
    assert raw.get_json() == {"mimetype": "text/csv"}

    refused = client.post("/extra/json", **csv)
    assert refused.status_code == 415
    assert refused.get_json()["code"] == 415
    assert client.post("/extra/json", json={}, headers=bearer("bob")).status_code == 200
