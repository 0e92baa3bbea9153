"""What a plain service module raises; views map each to an HTTP answer.

Each carries a message a person can act on and, when a field is at fault, ``errors`` keyed by
its path, as in the JSON error body.
"""


class ServiceError(Exception):
    def __init__(self, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message, self.errors = message, errors


class InvalidJob(ServiceError):
    """The job does not fit its data, the compute budget or the runtime cap."""


class IdempotencyKeyReused(ServiceError):
    """The Idempotency-Key was used with another body."""


class IdempotentRequestInFlight(ServiceError):
    """The first request with this Idempotency-Key has not stored its job yet."""


class TooManyActiveJobs(ServiceError):
    """The tenant has as many queued and started jobs as it may."""
