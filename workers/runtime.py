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
    lock: threading.Lock = field(default_factory=threading.Lock)


current = Current()


def begin(job_id: str, monitor) -> None:
    with current.lock:
        current.job_id, current.monitor = job_id, monitor


def end() -> None:
    with current.lock:
        current.job_id, current.monitor = None, None


def request_stop(reason: str) -> bool:
    """Ask the running job to stop at its next epoch boundary; False when none runs."""
    with current.lock:
        monitor = current.monitor
    if monitor is None:
        return False
    monitor.request_stop(reason)
    return True


def running_job() -> str | None:
    with current.lock:
        return current.job_id
