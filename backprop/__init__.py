"""A pure-NumPy backpropagation engine for multilayer perceptrons.

Imports nothing but NumPy and the standard library, so the API process can predict with it
without pulling in the training service's dependencies.
"""

from .exceptions import BackpropError, CheckpointError, DivergenceError, SpecError
from .model import Model
from .network import Network
from .spec import normalize
from .trainer import Trainer, train

__all__ = [
    "BackpropError",
    "CheckpointError",
    "DivergenceError",
    "Model",
    "Network",
    "SpecError",
    "Trainer",
    "normalize",
    "train",
]
