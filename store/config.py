"""The settings the API and the workers share, read from the environment here and only here.

``service.config`` (the API's) and ``workers.settings`` (the workers') take these from this
module and add their own.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

WEEK_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class SharedConfig:
    """Attributes:
    redis_url: the Redis both sides use (REDIS_URL).
    data_ttl_seconds: how long a job's training arrays outlive the job (DATA_TTL_SECONDS).
    result_ttl_seconds, failure_ttl_seconds: how long rq keeps its own records of finished
        and failed attempts (RESULT_TTL_SECONDS, FAILURE_TTL_SECONDS).
    """

    redis_url: str = "redis://127.0.0.1:6379/0"
    data_ttl_seconds: int = WEEK_SECONDS
    result_ttl_seconds: int = WEEK_SECONDS
    failure_ttl_seconds: int = WEEK_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "SharedConfig":
        return cls(
            redis_url=env.get("REDIS_URL") or cls.redis_url,
            data_ttl_seconds=int(env.get("DATA_TTL_SECONDS", cls.data_ttl_seconds)),
            result_ttl_seconds=int(env.get("RESULT_TTL_SECONDS", cls.result_ttl_seconds)),
            failure_ttl_seconds=int(env.get("FAILURE_TTL_SECONDS", cls.failure_ttl_seconds)),
        )
