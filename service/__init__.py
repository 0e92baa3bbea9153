"""The Flask API: validates requests, stores jobs, enqueues them by id and serves models."""

from flask import Flask, request
from flask_smorest import abort

from . import (
    aliases,
    auth,
    bodies,
    dashboard,
    datasets,
    endpoints,
    errors,
    events,
    extensions,
    health,
    ids,
    inference,
    jobs,
    logs,
    metrics,
    models,
    request_limits,
    schemas,
    sweeps,
    webhooks,
)
from .config import from_env
from .json_provider import StrictJSONProvider

OPENAPI = {
    "API_TITLE": "backprop training service",
    "API_VERSION": "1.0.0",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    # API docs at /docs: flask-smorest's ReDoc page, its script served from the repository.
    "OPENAPI_REDOC_PATH": "docs",
    "OPENAPI_REDOC_URL": "/static/vendor/redoc/redoc.standalone.js",
}
BODY_METHODS = ("POST", "PUT", "PATCH")


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: defaults, then the environment, then ``test_config``."""
    # No Flask static route: the dashboard blueprint serves service/static/, open to all.
    app = Flask(__name__, static_folder=None)
    app.config.update(OPENAPI)
    app.config.update(from_env())
    if test_config:
        app.config.update(test_config)
    app.json = StrictJSONProvider(app)
    app.json.sort_keys = False
    # <rid:job_id>: a malformed id is 404 before it can name another Redis key.
    app.url_map.converters["rid"] = ids.IdConverter
    app.url_map.converters["mref"] = aliases.ModelRefConverter  # a model id or an alias
    app.url_map.converters["alias"] = aliases.AliasNameConverter

    # First, so that every request is timed, counted and has its id, whoever answers it.
    logs.init_app(app)
    metrics.init_app(app)
    request_limits.init_app(app)  # before anything else reads the request
    # The rate limiter's check runs before authentication, so failed keys are counted too.
    extensions.init_app(app)
    events.init_app(app)
    auth.init_app(app)
    bodies.init_app(app)
    # Imported here, not at the top: ``python -m service.openapi`` runs that module as __main__.
    from .openapi import ContractPlugin

    api = errors.ServiceApi(app, spec_kwargs={"extra_plugins": [ContractPlugin()]})
    errors.init_app(app)
    api.register_converter(ids.IdConverter, ids.param_schema)
    api.register_converter(aliases.ModelRefConverter, aliases.param_schema)
    api.register_converter(aliases.AliasNameConverter, aliases.name_param_schema)
    for module in (health, jobs, models, aliases, datasets, webhooks, metrics, sweeps):
        api.register_blueprint(module.blp)
    app.register_blueprint(dashboard.bp)  # the page at /, its assets; not in the OpenAPI doc
    app.register_blueprint(inference.bp)  # the Open Inference Protocol: not in the OpenAPI doc
    # The predict view parses its body by hand (the hot path) and refers to this by name.
    api.spec.components.schema("PredictRequest", schema=schemas.PredictRequestSchema)
    app.extensions["api"] = api

    @app.before_request
    def require_json():
        if request.routing_exception is not None:
            return  # no such route (404) or method (405): that answer comes first
        if endpoints.takes_raw_body():
            return  # the view checks its own content types
        if request.method in BODY_METHODS and request.mimetype != "application/json":
            abort(415, message="Send the body as JSON with Content-Type: application/json.")

    return app
