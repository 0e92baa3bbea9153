"""What this worker process is doing right now, shared by the task, signals and the heartbeat.

A worker runs one job at a time in its main thread (rq's SimpleWorker), so this is a little
process-wide state: the job id, its monitor, and a way to ask it to stop.
"""

import threading
from dataclasses import dataclass, field


class JobStopped(Exception):
    """Raised in the main thread when rq's stop-job command arrives for the running job."""


@dataclass
class Current:
    job_id: str | None = None
    monitor: object | None = None
    pending: str | None = None  # a stop asked for before the monitor existed
    lock: threading.Lock = field(default_factory=threading.Lock)


current = Current()


def begin(job_id: str) -> None:
    """The worker holds ``job_id``'s lease: the heartbeat renews it from now on."""
    with current.lock:
        current.job_id, current.monitor, current.pending = job_id, None, None


def attach(monitor) -> None:
    """Training starts: stops are handed to ``monitor``, including one asked for while loading."""
    with current.lock:
        current.monitor, pending = monitor, current.pending
    if pending is not None:
        monitor.request_stop(pending)


def end() -> None:
    with current.lock:
        current.job_id, current.monitor, current.pending = None, None, None


def request_stop(reason: str) -> None:
    """Ask the running job to stop at its next epoch boundary."""
    with current.lock:
        monitor = current.monitor
        if monitor is None and current.job_id is not None and current.pending is None:
            current.pending = reason
    if monitor is not None:
        monitor.request_stop(reason)


def running_job() -> str | None:
    with current.lock:
        return current.job_id
