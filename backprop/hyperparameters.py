"""A hyperparameter's default and bounds, declared once by the class that uses it.

The engine checks specs with it (``backprop.spec``), and the API derives its schema fields and
the OpenAPI document from the same declarations, so the two cannot disagree.
"""

import math
from dataclasses import dataclass

from .exceptions import SpecError


@dataclass(frozen=True)
class Hyperparameter:
    """One number (or flag) a class takes from the spec.

    Attributes:
        default: the value when the spec leaves it out; its type is the parameter's type.
        low, high: bounds, None for none; ``low_open``/``high_open`` exclude the bound itself.
    """

    default: float | int | bool
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    @property
    def is_flag(self) -> bool:
        return isinstance(self.default, bool)

    @property
    def is_integer(self) -> bool:
        return isinstance(self.default, int) and not self.is_flag

    def check(self, value, path: str) -> float | bool:
        """``value`` as this parameter's type, after checking it is in bounds.

        Raises:
            SpecError: naming ``path``.
        """
        if self.is_flag:
            if not isinstance(value, bool):
                raise SpecError(path, "must be true or false")
            return value
        if self.is_integer:
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not whole or (self.low is not None and value < self.low):
                raise SpecError(path, f"must be an integer >= {self.low:g}")
        if not (isinstance(value, int | float) and not isinstance(value, bool)):
            raise SpecError(path, "must be a finite number")
        if not math.isfinite(value):
            raise SpecError(path, "must be a finite number")
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise SpecError(path, f"must be {'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise SpecError(path, f"must be {'<' if self.high_open else '<='} {self.high:g}")
        return value if self.is_integer else float(value)

    def value(self, given, path: str) -> float | bool:
        """``given`` checked, or the default when it is None."""
        return self.check(self.default if given is None else given, path)
