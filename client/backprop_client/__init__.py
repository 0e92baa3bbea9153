"""A thin, typed Python client for backprop-service, and the ``backprop`` CLI on it."""

from backprop_client.aliases import Alias
from backprop_client.client import Client, Dataset, Job, Model
from backprop_client.errors import (
    ApiError,
    Conflict,
    NotFound,
    RateLimited,
    Unavailable,
    ValidationError,
)
from backprop_client.sweeps import Sweep

__all__ = [
    "Alias",
    "ApiError",
    "Client",
    "Conflict",
    "Dataset",
    "Job",
    "Model",
    "NotFound",
    "RateLimited",
    "Sweep",
    "Unavailable",
    "ValidationError",
]
