"""The engine callback: progress, history, checkpoints and every reason to stop early.

It makes no Redis round trip per epoch: progress and history are buffered (the trainer's own
history is the buffer) and flushed in one pipeline every ``flush_seconds``, which also reads
the job's cancel flag; checkpoints go every ``checkpoint_seconds``. The epochs trained are
counted in the worker's metrics at each flush, in memory, whether Redis takes the flush or not.
"""

import logging
import time

import redis

import store
from store.connection import UNAVAILABLE

from . import metrics
from .pacing import ClockPacer
from .settings import Settings

log = logging.getLogger(__name__)

# Redis cannot take a write now: it is unreachable or failing over (store.connection's
# UNAVAILABLE), or full (at maxmemory, with the noeviction policy, it refuses writes until
# space is freed). Either way the write is tried again later.
REDIS_ERRORS = (*UNAVAILABLE, redis.exceptions.OutOfMemoryError)


def refusal(exc: Exception) -> str:
    """Why Redis did not take a write, for a log line."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return "Redis is full (maxmemory)"
    if isinstance(exc, redis.exceptions.ResponseError):  # READONLY, NOREPLICAS
        return f"Redis refuses writes for now ({exc})"
    return f"Redis is unreachable ({exc})"


class StopReason:
    CANCEL = "cancel"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    LEASE_LOST = "lease_lost"


class JobMonitor:
    """Per-epoch callback for one attempt at one job.

    Args:
        conn: Redis client.
        job_id: the job being trained.
        trainer: its ``backprop.Trainer`` (possibly restored from a checkpoint).
        settings: the worker's settings.
        max_runtime: seconds of training the job may use over all its attempts, or None.
        runtime_before: seconds earlier attempts already used.
        trial: a sweep's trial's ``workers.sweep_trials.TrialMonitor``, or None.
    """

    def __init__(
        self,
        conn,
        job_id,
        trainer,
        settings: Settings,
        max_runtime,
        runtime_before=0.0,
        trial=None,
    ):
        self.conn, self.job_id, self.trainer, self.settings = conn, job_id, trainer, settings
        self.trial = trial
        self.max_runtime = max_runtime
        self.runtime_before = runtime_before
        self.flushed = trainer.epoch  # history entries already stored
        self.start_epoch = trainer.epoch
        self.counted = trainer.epoch  # epochs already added to the worker's metrics
        self.started = time.monotonic()
        self.last_flush = self.last_checkpoint = self.started
        self.pacer = ClockPacer(trainer.epoch)
        self.stop_reason: str | None = None
        self.refused: set[str] = set()  # the writes failing now, each logged once until it works

    def request_stop(self, reason: str) -> None:
        """Called from a signal handler or the heartbeat thread; honoured at the next epoch."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def runtime(self, now: float) -> float:
        return self.runtime_before + (now - self.started)

    def __call__(self, epoch: int, logs: dict) -> bool:
        if self.stop_reason is not None:
            return True
        if epoch < self.pacer.next_epoch:
            return False
        now = self.pacer.read(epoch)
        if self.max_runtime is not None and self.runtime(now) > self.max_runtime:
            self.stop_reason = StopReason.TIMEOUT
            return True
        if now - self.last_flush >= self.settings.flush_seconds:
            if self.flush(now) or (self.trial and self.trial.should_stop(self.trainer.history)):
                self.stop_reason = StopReason.CANCEL
                return True
        if now - self.last_checkpoint >= self.settings.checkpoint_seconds:
            self.checkpoint(now)
        return False

    def progress(self, now: float) -> store.Progress:
        epoch, epochs = self.trainer.epoch, self.trainer.epochs
        done = epoch - self.start_epoch
        eta = (now - self.started) / done * (epochs - epoch) if done else None
        # The last epoch's, from the history: the callback does not keep each epoch's logs.
        history = self.trainer.history
        last = {k: history[k][-1] for k in ("loss", "val_loss") if done and history.get(k)}
        return {
            "epoch": epoch,
            "epochs": epochs,
            "loss": last.get("loss"),
            "val_loss": last.get("val_loss"),
            "eta_seconds": None if eta is None else round(eta, 3),
        }

    def flush(self, now: float | None = None, strict: bool = False) -> bool:
        """Store progress and unsent history; True when a cancel has been requested.

        While Redis cannot take it the entries stay buffered and the flush is tried again after
        ``flush_seconds``, unless ``strict``, when the error propagates.
        """
        now = time.monotonic() if now is None else now
        self.count_epochs()
        history = self.trainer.history
        fresh = {column: values[self.flushed :] for column, values in history.items()}
        try:
            canceled = store.flush_progress(
                self.conn,
                self.job_id,
                self.progress(now),
                fresh,
                self.flushed,
                round(self.runtime(now), 3),
            )
            if self.trial is not None:
                self.trial.report(history)
        except REDIS_ERRORS as exc:
            if strict:
                raise
            self.last_flush = now
            self._refused("progress", exc)
            return False
        self._stored("progress")
        self.flushed = len(history["epoch"])
        self.last_flush = now
        return canceled

    def count_epochs(self) -> None:
        """Add the epochs trained since the last count to the worker's metrics."""
        epoch = self.trainer.epoch
        if epoch > self.counted:
            metrics.EPOCHS.inc(epoch - self.counted)
            self.counted = epoch

    def checkpoint(self, now: float | None = None, strict: bool = False) -> None:
        """Store the full training state (one SET, so the previous one stays whole until then).

        While Redis cannot take it, the previous checkpoint stays and this one is tried again
        after ``checkpoint_seconds``, unless ``strict``, when the error propagates.
        """
        now = time.monotonic() if now is None else now
        try:
            store.save_checkpoint(self.conn, self.job_id, self.trainer.checkpoint())
        except REDIS_ERRORS as exc:
            if strict:
                raise
            self._refused("checkpoint", exc)
        else:
            self._stored("checkpoint")
        self.last_checkpoint = now

    def _refused(self, what: str, exc: Exception) -> None:
        if what not in self.refused:
            self.refused.add(what)
            log.warning("job %s: %s not stored: %s; will retry", self.job_id, what, refusal(exc))

    def _stored(self, what: str) -> None:
        if what in self.refused:
            self.refused.discard(what)
            log.info("job %s: %s stored again", self.job_id, what)
