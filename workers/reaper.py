"""The worker's heartbeat thread: keeps its own lease alive and rescues other workers' jobs.

A job is orphaned when nobody holds its lease while it is started, or while rq has taken it
off the queue. Seen orphaned on two passes in a row (so a worker that has just dequeued it can
take its lease), it is put back at the front of the queue exactly once, and the next attempt
resumes from its last checkpoint. A cancel that a job has not honoured within the grace time is
enforced with rq's stop-job command.

A pass reads only what is overdue: leases past their deadline (a worker gives a job it has
dequeued a deadline before its lease, and the pass gives one to anything left in rq's
intermediate queue) and cancels past their grace time. Healthy jobs cost a pass nothing, so
its cost does not grow with the number of jobs queued or running.
"""

import logging
import threading
import time

from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer

import store
from store import JobRecord, JobStatus, logs, queue

from . import metrics, runtime
from .progress import REDIS_ERRORS, StopReason, refusal
from .settings import Settings

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Background thread of one worker process.

    Args:
        conn: Redis client.
        owner: this worker's lease identity.
        settings: intervals and timeouts.
    """

    def __init__(self, conn, owner: str, settings: Settings):
        super().__init__(name="heartbeat", daemon=True)
        self.conn, self.owner, self.settings = conn, owner, settings
        self.stopping = threading.Event()
        self.suspects: set[str] = set()
        self.stop_sent: set[str] = set()

    def run(self) -> None:
        next_reap = 0.0
        refused = False  # logged once, until a whole reaper pass goes through again
        seeded = False
        while True:  # the first beat at once, so /readyz counts a worker as soon as it starts
            try:
                self.renew()
                if not seeded:
                    store.seed_lease_deadlines(self.conn)
                    seeded = True
                if time.monotonic() >= next_reap:
                    reap(self.conn, self.suspects, self.stop_sent, self.settings)
                    next_reap = time.monotonic() + self.settings.reap_seconds
                    refused = False
            except REDIS_ERRORS as exc:
                if not refused:
                    log.warning("heartbeat: %s; will retry", refusal(exc))
                refused = True
            if self.stopping.wait(self.settings.heartbeat_seconds):
                return

    def renew(self) -> None:
        """Say this worker is alive, and keep the lease of the job it runs."""
        store.worker_beat(self.conn, self.owner, self.settings.lease_seconds)
        job_id = runtime.running_job()
        if job_id and not store.renew_lease(self.conn, job_id, self.owner, self.settings.lease_ms):
            runtime.request_stop(StopReason.LEASE_LOST)


# rq still holds these jobs for a worker to take: not orphaned, however long they wait.
WAITING = frozenset({RqStatus.QUEUED, RqStatus.DEFERRED, RqStatus.SCHEDULED})
# At most this many overdue leases, and as many overdue cancels, are looked at in one pass; the
# rest wait for the next (after many workers died at once).
PASS_LIMIT = 1000


def rq_status(conn, rq_job_id: str | None) -> RqStatus | None:
    """rq's own status of an attempt, as rq's enum member; None when rq has no such job."""
    if not rq_job_id:
        return None
    try:
        return Job.fetch(rq_job_id, connection=conn, serializer=JSONSerializer).get_status()
    except (NoSuchJobError, InvalidJobOperation):  # gone, or expired while being read
        return None


def waiting(conn, record: JobRecord, dequeued: dict[str, str]) -> bool:
    """Whether a queued job is still in rq's queue for a worker to take (``dequeued`` is
    ``queue.dequeued_job_ids``: taken by a worker that has not started it)."""
    rq_id = record.get("rq_job_id")
    return rq_id not in dequeued and rq_status(conn, rq_id) in WAITING


def reap(conn, suspects: set, stop_sent: set, settings: Settings) -> None:
    """One pass over the overdue jobs; ``suspects`` carries orphans seen on the last pass."""
    dequeued = queue.dequeued_job_ids(conn)
    # Left there by a worker that died at once?
    store.expect_leases(conn, set(dequeued.values()), settings.lease_ms, only_new=True)
    seen = set()
    for job_id, deadline in store.due_leases(conn, PASS_LIMIT):
        record = store.get_job(conn, job_id)
        if record is None or record["status"] not in (JobStatus.QUEUED, JobStatus.STARTED):
            store.drop_due_lease(conn, job_id)
            store.deactivate(conn, job_id)
            continue
        if store.lease_holder(conn, job_id) is not None:
            continue  # renewed since it was read, so its deadline has moved on
        if record["status"] == JobStatus.QUEUED and waiting(conn, record, dequeued):
            # Back in rq's queue (requeued, say): not orphaned, however long it waits; the
            # worker that takes it gives it a deadline again.
            store.drop_due_lease(conn, job_id, deadline)
            continue
        if job_id not in suspects:
            seen.add(job_id)
            continue
        if store.claim_orphan(conn, job_id, settings.lease_ms):
            rescue(conn, record, settings)
    suspects.clear()
    suspects.update(seen)
    for job_id in store.cancels_older_than(conn, settings.cancel_grace_seconds, PASS_LIMIT):
        enforce_cancel(conn, job_id, stop_sent)


def rescue(conn, record: JobRecord, settings: Settings) -> None:
    """Requeue an orphaned job, unless its workers keep dying on it: then it fails."""
    job_id = record["id"]
    with logs.bound(job_id=job_id, request_id=record.get("request_id")):
        _rescue(conn, record, settings)


def _rescue(conn, record: JobRecord, settings: Settings) -> None:
    job_id = record["id"]
    crashes = store.count_crash(conn, job_id)
    if crashes >= settings.max_crashes:
        message = f"its worker died {crashes} times before it could finish (out of memory?)"
        store.finish_job(
            conn,
            job_id,
            settings.data_ttl_seconds,
            status=JobStatus.FAILED,
            ended_at=store.now_iso(),
            error={"code": "crashed", "message": message},
        )
        metrics.job_ended(JobStatus.FAILED, "crashed", record.get("runtime_seconds"))
        log.error("job %s failed: %s", job_id, message)
        return
    queue.requeue(conn, record)
    log.warning("job %s lost its worker; requeued to resume from its checkpoint", job_id)


def enforce_cancel(conn, job_id: str, stop_sent: set) -> None:
    """Stop a started job whose cancel is past its grace time with rq's stop-job command."""
    record = store.get_job(conn, job_id)
    if record is None or record["status"] in store.FINAL_STATUSES:
        store.forget_cancel(conn, job_id)
        return
    if record["status"] != JobStatus.STARTED or job_id in stop_sent:
        return
    rq_id = record.get("rq_job_id")
    if rq_id:
        send_stop_job_command(conn, rq_id, serializer=JSONSerializer)
        stop_sent.add(job_id)
        log.warning("job %s ignored its cancel; sent rq's stop-job command", job_id)
