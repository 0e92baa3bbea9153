"""The engine callback that reports progress and history without a round trip per epoch."""

import time

import store

FLUSH_INTERVAL = 0.25


class ProgressReporter:
    """Per-epoch callback: buffers in memory, flushes pipelined every ``interval`` seconds.

    The trainer's own history is the buffer: a flush sends the entries past the last one
    already stored.

    Args:
        conn: Redis client.
        job_id: the job being trained.
        trainer: the ``backprop.Trainer`` whose history is reported.
    """

    def __init__(self, conn, job_id: str, trainer, interval: float = FLUSH_INTERVAL):
        self.conn, self.job_id, self.trainer = conn, job_id, trainer
        self.interval = interval
        self.flushed = trainer.epoch  # entries already stored (after a resume, the checkpoint's)
        self.start_epoch = trainer.epoch
        self.started = time.monotonic()
        self.last_flush = self.started
        self.last_logs: dict = {}

    def __call__(self, epoch: int, logs: dict) -> bool:
        self.last_logs = logs
        now = time.monotonic()
        if now - self.last_flush >= self.interval:
            self.flush(now)
        return False

    def progress(self, now: float) -> dict:
        epoch, epochs = self.trainer.epoch, self.trainer.epochs
        done = epoch - self.start_epoch
        eta = (now - self.started) / done * (epochs - epoch) if done else None
        return {
            "epoch": epoch,
            "epochs": epochs,
            "loss": self.last_logs.get("loss"),
            "val_loss": self.last_logs.get("val_loss"),
            "eta_seconds": None if eta is None else round(eta, 3),
        }

    def flush(self, now: float | None = None) -> None:
        """Store progress and the history entries not yet stored."""
        now = time.monotonic() if now is None else now
        history = self.trainer.history
        fresh = {column: values[self.flushed :] for column, values in history.items()}
        store.flush_progress(self.conn, self.job_id, self.progress(now), fresh)
        self.flushed = len(history["epoch"])
        self.last_flush = now
