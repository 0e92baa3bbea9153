"""Worker settings from the environment."""

import os
import socket
from dataclasses import dataclass

from store.config import SharedConfig


@dataclass(frozen=True)
class Settings:
    """How often a worker reports, checkpoints and checks on other workers.

    Attributes:
        flush_seconds: progress and history are written at most this often (pipelined).
        checkpoint_seconds: the full training state is written at most this often.
        lease_seconds: a job whose worker has not renewed its lease for this long is orphaned.
        heartbeat_seconds: how often a worker renews the lease of the job it runs.
        reap_seconds: how often a worker looks for orphaned jobs to put back on the queue.
        cancel_grace_seconds: after this long, a cancel that the job has not honoured at an
            epoch boundary is enforced with rq's stop-job command.
        data_ttl_seconds: how long a job's training arrays are kept after it ends.
        max_crashes: a job whose worker has died this many times fails with ``crashed``.
        final_write_patience_seconds: how long the end of an attempt (its last progress, the
            model, the job's final status) waits for Redis to take it while Redis is
            unreachable or full.
        metrics_port: the port this worker serves its Prometheus metrics on; 0 serves none.
        metrics_host: the address that port is bound to.
    """

    flush_seconds: float = 0.25
    checkpoint_seconds: float = 5.0
    lease_seconds: float = 10.0
    heartbeat_seconds: float = 1.0
    reap_seconds: float = 2.0
    cancel_grace_seconds: float = 10.0
    data_ttl_seconds: int = SharedConfig.data_ttl_seconds
    max_crashes: int = 5
    final_write_patience_seconds: float = 120.0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env=os.environ) -> "Settings":
        def num(name, default):
            return type(default)(env.get(name, default))

        return cls(
            flush_seconds=num("FLUSH_SECONDS", cls.flush_seconds),
            checkpoint_seconds=num("CHECKPOINT_SECONDS", cls.checkpoint_seconds),
            lease_seconds=num("LEASE_SECONDS", cls.lease_seconds),
            heartbeat_seconds=num("HEARTBEAT_SECONDS", cls.heartbeat_seconds),
            reap_seconds=num("REAP_SECONDS", cls.reap_seconds),
            cancel_grace_seconds=num("CANCEL_GRACE_SECONDS", cls.cancel_grace_seconds),
            data_ttl_seconds=SharedConfig.from_env(env).data_ttl_seconds,
            max_crashes=num("MAX_CRASHES", cls.max_crashes),
            final_write_patience_seconds=num(
                "FINAL_WRITE_PATIENCE_SECONDS", cls.final_write_patience_seconds
            ),
            metrics_port=num("WORKER_METRICS_PORT", cls.metrics_port),
            metrics_host=env.get("WORKER_METRICS_HOST", cls.metrics_host),
        )

    @property
    def lease_ms(self) -> int:
        return int(self.lease_seconds * 1000)


def worker_identity() -> str:
    """A name unique to this process, stored as the owner of the leases it takes."""
    return f"{socket.gethostname()}:{os.getpid()}"
