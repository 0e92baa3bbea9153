"""Marshmallow fields for numbers and numeric arrays that accept JSON numbers only.

marshmallow's Float takes ``"1.5"`` and ``True``; a training service must not guess, so these
fields take ints and floats, finite, and nothing else.
"""

import math
import sys

import numpy as np
from marshmallow import ValidationError, fields

NUMBER_TYPES = (int, float)
# A finite number as OpenAPI can say it: within float64's range.
FINITE = {"type": "number", "minimum": -sys.float_info.max, "maximum": sys.float_info.max}
RECTANGULAR = "Rectangular: every row has as many values as the first."


class Number(fields.Float):
    """A finite JSON number: no strings, no booleans, no NaN or Infinity."""

    def __init__(self, **kwargs):
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) not in NUMBER_TYPES:
            raise ValidationError("Not a number.")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise ValidationError("Must be finite.")
        return super()._deserialize(value, attr, data, **kwargs)


class Matrix(fields.Field):
    """A rectangular 2-D array of finite numbers, deserialised to float64.

    Args:
        allow_vector: also accept a flat list, read as one column.
        max_rows: the most rows accepted.
    """

    def __init__(self, allow_vector: bool = False, max_rows: int | None = None, **kwargs):
        self.allow_vector = allow_vector
        self.max_rows = max_rows
        kwargs["metadata"] = {**self.openapi(), **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def openapi(self) -> dict:
        """The field in the OpenAPI document: what OpenAPI can say (non-empty rows of finite
        numbers, at most ``max_rows`` of them), and that they are rectangular in words."""
        rows = {"type": "array", "minItems": 1}
        if self.max_rows is not None:
            rows["maxItems"] = self.max_rows
        matrix = {**rows, "items": {"type": "array", "minItems": 1, "items": dict(FINITE)}}
        if not self.allow_vector:
            return {**matrix, "description": RECTANGULAR}
        vector = {**rows, "items": dict(FINITE)}
        return {
            "anyOf": [matrix, vector],
            "description": f"{RECTANGULAR} A flat array is a column.",
        }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a non-empty array of rows.")
        if self.max_rows is not None and len(value) > self.max_rows:
            raise ValidationError(f"Too many rows: {len(value)} > {self.max_rows}.")
        if self.allow_vector and not isinstance(value[0], list):
            value = [[v] for v in value]
        width = None
        seen: set[type] = set()
        for i, row in enumerate(value):
            if not isinstance(row, list):
                raise ValidationError(f"Row {i} is not an array.")
            if width is None:
                width = len(row)
            if len(row) != width:
                raise ValidationError(f"Row {i} has {len(row)} values; row 0 has {width}.")
            seen.update(map(type, row))
        if width == 0:
            raise ValidationError("Rows must not be empty.")
        if not seen <= set(NUMBER_TYPES):
            raise ValidationError("Values must be numbers (no strings, booleans or arrays).")
        try:
            array = np.array(value, dtype=np.float64)
        except OverflowError as exc:
            raise ValidationError("A value is too large.") from exc
        if not np.isfinite(array).all():
            raise ValidationError("Values must be finite.")
        return array

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else np.asarray(value).tolist()


class Vector(Matrix):
    """A non-empty 1-D array of finite numbers, deserialised to float64."""

    def openapi(self) -> dict:
        return {"type": "array", "minItems": 1, "items": dict(FINITE)}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a non-empty array of numbers.")
        if any(isinstance(v, list) for v in value):
            raise ValidationError("Must be a flat array of numbers.")
        return super()._deserialize([value], attr, data, **kwargs)[0]


class Bool(fields.Boolean):
    """A JSON true or false; not 1, "yes" or "true"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not bool:
            raise ValidationError("Not a boolean.")
        return value
