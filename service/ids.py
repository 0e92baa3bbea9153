"""The one format of job, model and dataset ids, checked before an id reaches a Redis key.

Job ids (and so model ids) are ``store.new_id()``, uuid4 hex; dataset ids are
``store.dataset_id_for()``, a truncated SHA-256 hex digest: 32 lowercase hex digits either way.
Anything else would name another key (``<id>:spec``, ``<id>:array:X``) and is refused: 404 in a
URL, 422 in a field.
"""

import re

from marshmallow import ValidationError, validate
from werkzeug.routing import BaseConverter

PATTERN = "[0-9a-f]{32}"
ANCHORED = f"^{PATTERN}$"  # as OpenAPI documents it
# An alias of a model (service.aliases): a letter first, no colon or slash, and never 32 hex
# digits (looks_like_id), which would read as an id.
ALIAS_PATTERN = "[A-Za-z][A-Za-z0-9_.-]{0,63}"
# Where a model id is taken, an alias is too.
MODEL_REF_PATTERN = f"(?:{PATTERN}|{ALIAS_PATTERN})"
_ID = re.compile(PATTERN)
# What a person would take for an id: 32 hex digits in either case (names must not be).
_LOOKALIKE = re.compile(PATTERN.replace("a-f", "a-fA-F"))


def is_id(value: str) -> bool:
    """Whether ``value`` is a well-formed id."""
    return _ID.fullmatch(value) is not None


def looks_like_id(value: str) -> bool:
    """Whether ``value`` could be taken for an id: 32 hex digits, whatever their case."""
    return _LOOKALIKE.fullmatch(value) is not None


class IdConverter(BaseConverter):
    """``<rid:job_id>``: the URL matches only a well-formed id, so others are 404."""

    regex = PATTERN


def param_schema(converter: IdConverter) -> dict:
    """How flask-smorest documents an ``rid`` path parameter."""
    return {"type": "string", "pattern": ANCHORED}


class ModelRefValidator(validate.Regexp):
    """A marshmallow validator of a model id or alias name; documented as its pattern."""

    def __init__(self):
        super().__init__(
            f"^{MODEL_REF_PATTERN}$", error="Not a model id (32 lowercase hex digits) or alias."
        )

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class IdValidator(validate.Regexp):
    """A marshmallow validator of one id; documented as its pattern."""

    def __init__(self, what: str):
        super().__init__(ANCHORED, error=f"Not a {what} id: 32 lowercase hex digits.")

    def __call__(self, value: str) -> str:
        # fullmatch: $ alone would also let a trailing newline through.
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value
