"""Responses are strict JSON: NaN and Infinity, which ``json.dumps`` writes by default and JSON
has no words for, become null.

Views refuse what they can (a prediction that overflows is 422); this catches the rest, such as
a validation loss that overflowed in float32, before a client's parser chokes on it.
"""

from flask.json.provider import DefaultJSONProvider

from store.codecs import finite


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's provider, writing null for NaN and Infinity."""

    def dumps(self, obj, **kwargs) -> str:
        kwargs["allow_nan"] = False
        try:
            return super().dumps(obj, **kwargs)
        except ValueError:  # a non-finite float somewhere: rare, so only then walk the tree
            return super().dumps(finite(obj), **kwargs)
