"""The one format of job, model and dataset ids, checked before an id reaches a Redis key.

Job ids (and so model ids) are ``store.new_id()``, uuid4 hex; dataset ids are
``store.dataset_id_for()``, a truncated SHA-256 hex digest: 32 lowercase hex digits either way.
Anything else would name another key (``<id>:spec``, ``<id>:array:X``) and is refused: 404 in a
URL, 422 in a field.
"""

from marshmallow import ValidationError, validate
from werkzeug.routing import BaseConverter

PATTERN = "[0-9a-f]{32}"
ANCHORED = f"^{PATTERN}$"  # as OpenAPI documents it


class IdConverter(BaseConverter):
    """``<rid:job_id>``: the URL matches only a well-formed id, so others are 404."""

    regex = PATTERN


def param_schema(converter: IdConverter) -> dict:
    """How flask-smorest documents an ``rid`` path parameter."""
    return {"type": "string", "pattern": ANCHORED}


class IdValidator(validate.Regexp):
    """A marshmallow validator of one id; documented as its pattern."""

    def __init__(self, what: str):
        super().__init__(ANCHORED, error=f"Not a {what} id: 32 lowercase hex digits.")

    def __call__(self, value: str) -> str:
        # fullmatch: $ alone would also let a trailing newline through.
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value
