"""A thin, typed Python client for backprop-service, and the ``backprop`` CLI on it."""

from backprop_client.client import Client, Dataset, Job, Model
from backprop_client.errors import (
    ApiError,
    Conflict,
    NotFound,
    RateLimited,
    Unavailable,
    ValidationError,
)

__all__ = [
    "ApiError",
    "Client",
    "Conflict",
    "Dataset",
    "Job",
    "Model",
    "NotFound",
    "RateLimited",
    "Unavailable",
    "ValidationError",
]
