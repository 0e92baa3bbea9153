"""A hyperparameter sweep as the client sees it: ``Client.sweep`` returns one."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from backprop_client.waiting import FINAL_STATUSES, check, draw

if TYPE_CHECKING:
    from backprop_client.client import Client, Job, Model

POLL_SECONDS = 0.5  # between two reads of a sweep in ``Sweep.wait`` (it has no long poll)


class Sweep:
    """A sweep; ``record`` is ``GET /v1/sweeps/{id}`` as last read, ``refresh()`` reads it.

    Its trials are ordinary jobs (``Client.job(trial["job_id"])``, or
    ``Client.list_jobs(sweep_id=...)``).
    """

    def __init__(self, client: Client, record: dict):
        self.client, self.record = client, record
        self.id: str = record["id"]

    def __repr__(self) -> str:
        return f"Sweep({self.id!r}, status={self.status!r})"

    @property
    def status(self) -> str:
        """``running``, ``finished`` or ``canceled``, as last read."""
        return self.record["status"]

    @property
    def trials(self) -> list[dict]:
        """Each trial's ``index``, ``job_id``, ``parameters``, ``status``, ``epochs``,
        ``objective_value`` and ``error``, in trial order, as last read."""
        return self.record["trials"]

    @property
    def best_trial(self) -> dict | None:
        """The trial with the best objective value so far (None before any has one)."""
        return self.record.get("best_trial")

    @property
    def counts(self) -> dict[str, int]:
        """The trials' counts by status, as last read."""
        return self.record["counts"]

    @property
    def ended(self) -> bool:
        """True once the sweep is not running and every trial has ended (a started trial of
        a canceled sweep stops at its next epoch)."""
        return self.status != "running" and all(t["status"] in FINAL_STATUSES for t in self.trials)

    def refresh(self) -> dict:
        """Read the sweep again; its record."""
        self.record = self.client._call("get_sweep", {"sweep_id": self.id}).json()
        return self.record

    def cancel(self) -> dict:
        """Cancel the sweep: its waiting and queued trials at once, started ones at their next
        epoch. Its record."""
        self.record = self.client._call("cancel_sweep", {"sweep_id": self.id}).json()
        return self.record

    def wait(self, progress: bool = False, timeout: float | None = None) -> dict:
        """Block until every trial has ended (polling every ``POLL_SECONDS``); the final record.

        ``progress`` draws a one-line summary on stderr. Raises ``TimeoutError`` after
        ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.ended:
                if progress:
                    draw(sweep_line(self.record), sys.stderr)
                check(deadline, "sweep")
                time.sleep(POLL_SECONDS)
                self.refresh()
        finally:
            if progress:
                draw(sweep_line(self.record), sys.stderr)
                sys.stderr.write("\n")
        return self.record

    def best_job(self) -> Job | None:
        """The best trial's job (None before any trial has an objective value)."""
        best = self.best_trial
        return None if best is None else self.client.job(best["job_id"])

    def best_model(self) -> Model | None:
        """The best trial's model: it must have finished (a trial's model id is its job id)."""
        best = self.best_trial
        return None if best is None else self.client.model(best["job_id"])


def sweep_line(record: dict) -> str:
    """``sweep <id> running 3/6 ended (finished 2, failed 0, canceled 1) best val_loss 0.0123
    (trial 4)`` for a sweep's record."""
    counts, trials = record.get("counts") or {}, record.get("trials") or []
    ended = sum(counts.get(status, 0) for status in FINAL_STATUSES)
    by_status = ", ".join(f"{status} {counts.get(status, 0)}" for status in FINAL_STATUSES)
    text = f"sweep {record['id']} {record['status']} {ended}/{len(trials)} ended ({by_status})"
    best = record.get("best_trial")
    if best is not None:
        metric = (record.get("objective") or {}).get("metric", "objective")
        text += f" best {metric} {best['objective_value']:.6g} (trial {best['index']})"
    return text
