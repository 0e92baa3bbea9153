"""The rq worker class: jobs run in the worker's own process, and signals reach the job."""

import logging
import signal
import threading
import time

from rq import SimpleWorker

import store

from . import runtime
from .progress import REDIS_ERRORS, StopReason, refusal
from .settings import Settings

log = logging.getLogger(__name__)

# While Redis is full or unavailable, rq's loop tries again after a pause that doubles up to
# this.
FULL_RETRY_SECONDS = 5.0


class TrainingWorker(SimpleWorker):
    """rq's SimpleWorker (no process per job: NumPy and the engine are loaded once).

    SIGTERM (warm shutdown) asks the running job to checkpoint and requeue itself at its next
    epoch boundary before rq exits. rq's stop-job command, which would kill a work horse,
    interrupts the job in this process instead.

    While Redis is full (maxmemory, noeviction) it refuses rq's own bookkeeping writes too, and
    rq's work loop quits on any error but a lost connection while it waits for a job. This
    worker waits for space instead: a full Redis must not take the workers down with it. The
    same goes for a Redis that is unreachable or failing over (REDIS_ERRORS), whichever of rq's
    steps it interrupts: the worker carries on with the new master.
    """

    def request_stop(self, signum, frame):
        runtime.request_stop(StopReason.SHUTDOWN)
        try:
            super().request_stop(signum, frame)
        except REDIS_ERRORS:
            pass  # rq notes the request in Redis after acting on it; the stop still happens

    def kill_horse(self, sig=None):
        if runtime.running_job() is not None:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

    def check_for_suspension(self, burst: bool):
        # The first write of each turn of rq's loop (its heartbeat): wait here for room.
        _wait_for_room(lambda: super(TrainingWorker, self).check_for_suspension(burst), "check in")

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        return _wait_for_room(
            lambda: super(TrainingWorker, self).dequeue_job_and_maintain_ttl(
                timeout, max_idle_time
            ),
            "ask for a job",
        )

    def execute_job(self, job, queue):
        # Until the task takes the job's lease, this deadline stands for it: if the worker
        # dies in between, the reaper finds the job without looking at every queued one.
        lease_ms = Settings.from_env().lease_ms
        _wait_for_room(
            lambda: store.expect_lease(self.connection, job.args[0], lease_ms),
            f"give {job.id} its deadline",
        )
        try:
            super().execute_job(job, queue)
        except REDIS_ERRORS as exc:
            # The task has recorded the job's own outcome, or left the job for the reaper to
            # put back on the queue; only rq's record of this run is missing.
            log.warning("%s; rq could not record the end of %s", refusal(exc), job.id)

    def heartbeat(self, timeout=None, pipeline=None):
        # rq sends its heartbeat's three commands one by one, two or three times a job: one
        # pipeline makes each heartbeat one round trip.
        own = self.connection.pipeline(transaction=False) if pipeline is None else None
        try:
            super().heartbeat(timeout, pipeline if own is None else own)
            if own is not None:
                own.execute()
        except REDIS_ERRORS as exc:
            log.warning("%s; rq's worker heartbeat skipped", refusal(exc))

    def run_maintenance_tasks(self):
        try:
            super().run_maintenance_tasks()
        except REDIS_ERRORS as exc:
            log.warning("%s; rq's registry cleanup put off", refusal(exc))


def _wait_for_room(call, what: str):
    """``call()``, retried while Redis is full or unavailable, with a growing pause up to
    FULL_RETRY_SECONDS.

    A stop request while idle raises rq's StopRequested out of the pause, as rq expects.
    """
    delay = 0.5
    while True:
        try:
            return call()
        except REDIS_ERRORS as exc:
            log.warning("%s; will %s again in %.1f s", refusal(exc), what, delay)
            time.sleep(delay)
            delay = min(delay * 2, FULL_RETRY_SECONDS)


def raise_job_stopped(signum, frame):
    """SIGUSR1 handler: stop the job now (only sent by ``kill_horse``)."""
    if runtime.running_job() is not None:
        raise runtime.JobStopped()
