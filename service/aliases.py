"""``/v1/aliases``: per-tenant names of models ("production"), moved without touching callers.

Every route that takes a model id (``/v1/models/{id}...``, ``/v2/models/{name}...``) takes one
of the caller's aliases too, through the ``mref`` URL converter; ``model_id_of`` resolves it on
every request (one Redis read), so the per-process model cache, keyed by model id, never
serves the model an alias pointed at before it moved.
"""

import re

import redis
from flask import current_app, request
from flask.views import MethodView
from flask_smorest import abort
from werkzeug.routing import BaseConverter

import store
from store import aliases

from . import ids
from .auth import current_tenant, digest
from .errors import Blueprint
from .extensions import redis_conn
from .schemas import AliasListSchema, AliasPutSchema, AliasSchema

blp = Blueprint("aliases", __name__, url_prefix="/v1/aliases", description="Model aliases")

NAME_RULE = (
    "An alias is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter, and not "
    "32 hex digits (which would read as a model id)."
)
_NAME = re.compile(ids.ALIAS_PATTERN)
KEY_DIGITS = 12  # of the SHA-256 of the API key, recorded with each move


class ModelRefConverter(BaseConverter):
    """``<mref:model_id>``: a model id or an alias name; anything else is 404 at routing."""

    regex = ids.MODEL_REF_PATTERN


def param_schema(converter: ModelRefConverter) -> dict:
    """How flask-smorest documents an ``mref`` path parameter."""
    return {
        "type": "string",
        "pattern": f"^{ModelRefConverter.regex}$",
        "description": "A model id, or the name of one of your aliases.",
    }


class AliasNameConverter(BaseConverter):
    """``<alias:name>``: any path segment, so that a bad name is a 422 naming it (check_name),
    documented as the names an alias may have."""


def name_param_schema(converter: AliasNameConverter) -> dict:
    """How flask-smorest documents an ``alias`` path parameter."""
    return {"type": "string", "pattern": f"^{ids.ALIAS_PATTERN}$", "description": NAME_RULE}


def resolve(conn: redis.Redis, tenant: str, ref: str) -> str | None:
    """The model id that ``ref`` names: itself when it is an id, else what the tenant's alias
    of that name points at now (None: no such alias). Every route and field that takes a model
    id resolves it here."""
    if ids.is_id(ref):
        return ref
    return aliases.resolve(conn, tenant, ref)


def model_id_of(ref: str) -> str:
    """``resolve`` for the current request: 404 for an unknown alias."""
    model_id = resolve(redis_conn(), current_tenant().name, ref)
    if model_id is None:
        abort(404, message=f"No model or alias {ref}.")
    return model_id


def delete_unless_aliased(model_id: str) -> None:
    """Delete a model, or 409 naming the aliases that point at it (another tenant's as
    ``tenant:name``)."""
    pointing = aliases.delete_model_unless_aliased(redis_conn(), model_id)
    if pointing:
        mine = current_tenant().name
        names = [name if owner == mine else f"{owner}:{name}" for owner, name in pointing]
        message = f"Aliases point at model {model_id}: {', '.join(names)}. Move or delete them."
        abort(409, message=message, errors={"aliases": names})


def check_name(name: str) -> None:
    """422 naming ``name`` unless it is a valid alias name."""
    if _NAME.fullmatch(name) is None or ids.looks_like_id(name):
        abort(422, errors={"name": [NAME_RULE]})


def key_id() -> str | None:
    """A short digest of the request's API key (None with keys off): which key moved an alias,
    without the key."""
    if not current_app.extensions["api_keys"]:
        return None
    _, _, key = request.headers.get("Authorization", "").partition(" ")
    return digest(key.strip())[:KEY_DIGITS]


@blp.route("")
class Aliases(MethodView):
    @blp.response(200, AliasListSchema)
    def get(self):
        """Your aliases and the models they point at, by name."""
        pointing = aliases.list_aliases(redis_conn(), current_tenant().name)
        return {"aliases": [{"name": n, "model_id": m} for n, m in pointing.items()]}


@blp.route("/<alias:name>")
class Alias(MethodView):
    @blp.arguments(AliasPutSchema)
    @blp.response(200, AliasSchema)
    @blp.alt_response(201, schema=AliasSchema, description="The alias is new.")
    @blp.alt_response(409, description=f"A new alias past {aliases.MAX_ALIASES} of them.")
    def put(self, body, name):
        """Point an alias at a model: create it, or move it (recorded in its history)."""
        check_name(name)
        conn, tenant = redis_conn(), current_tenant()
        model_id = body["model_id"]
        unknown = {"model_id": [f"No model {model_id}: give the id of a finished model of yours."]}
        meta = store.load_model_meta(conn, model_id)
        if meta is None or not tenant.owns(meta):
            abort(422, errors=unknown)
        try:
            previous = aliases.point(conn, tenant.name, name, model_id, tenant.name, key_id())
        except aliases.UnknownModel:
            abort(422, errors=unknown)  # deleted meanwhile
        except aliases.AliasLimitReached:
            abort(409, message=f"You have {aliases.MAX_ALIASES} aliases, the most allowed.")
        view = aliases.describe(conn, tenant.name, name)
        return view, 200 if previous is not None else 201

    @blp.response(200, AliasSchema)
    def get(self, name):
        """Which model an alias points at, and its moves: who, from which model, when."""
        view = aliases.describe(redis_conn(), current_tenant().name, name)
        if view is None:
            abort(404, message=f"No alias {name}.")
        return view

    @blp.response(204)
    def delete(self, name):
        """Delete an alias and its history; its model stays."""
        if not aliases.remove(redis_conn(), current_tenant().name, name):
            abort(404, message=f"No alias {name}.")
