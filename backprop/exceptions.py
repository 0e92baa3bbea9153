"""Errors the engine raises, one class per condition."""


class BackpropError(Exception):
    """Base class for every error the engine raises."""


class SpecError(BackpropError, ValueError):
    """The spec or the data does not describe a trainable network.

    Attributes:
        path: dotted path of the offending field, e.g. ``network.layers.1.units``.
    """

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class DivergenceError(BackpropError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(f"loss became {loss} at epoch {epoch}; lower the learning rate")
        self.epoch = epoch
        self.loss = loss


class CheckpointError(BackpropError):
    """A checkpoint does not belong to this spec and data, or is damaged."""
