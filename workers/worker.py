"""The rq worker class: jobs run in the worker's own process, and signals reach the job."""

import signal
import threading

from rq import SimpleWorker

from . import runtime
from .progress import StopReason


class TrainingWorker(SimpleWorker):
    """rq's SimpleWorker (no process per job: NumPy and the engine are loaded once).

    SIGTERM (warm shutdown) asks the running job to checkpoint and requeue itself at its next
    epoch boundary before rq exits. rq's stop-job command, which would kill a work horse,
    interrupts the job in this process instead.
    """

    def request_stop(self, signum, frame):
        runtime.request_stop(StopReason.SHUTDOWN)
        super().request_stop(signum, frame)

    def kill_horse(self, sig=None):
        if runtime.running_job() is not None:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)


def raise_job_stopped(signum, frame):
    """SIGUSR1 handler: stop the job now (only sent by ``kill_horse``)."""
    if runtime.running_job() is not None:
        raise runtime.JobStopped()
