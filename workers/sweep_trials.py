"""What a sweep's trial does at its worker's progress flushes: keep its objective value on its
job record, and apply the sweep's median stopping rule (as Vertex AI and Katib offer it).

**Objective value.** The best value of the objective's metric over the epochs trained so far
(``store.sweeps.best_value``), taken from the trainer's history in memory, row by row as it
grows, and written to the job record at each flush that changes it (and at the final flush,
before the job's final status): ``GET /v1/sweeps/{id}`` then reads one small hash per trial
instead of every trial's whole history.

**Median rule.** At a periodic flush past ``min_epochs``, a trial whose best value so far is
worse than the median of the other trials' values at the same epoch is stopped: it ends
``canceled`` with the error ``early_stopped`` and the reason. Only trials that have reached
that epoch count, and at least ``min_trials`` of them must have (finished and stopped ones
too, up to the epochs they ran). The others' values are one stored row each, read in one
pipelined round trip per flush (``store.sweeps.values_at``): nothing per epoch. The trial's
best so far, not its latest, is compared, so one noisy epoch does not stop it.
"""

import logging
import statistics

import redis

from store import JobRecord, sweeps

from .progress import REDIS_ERRORS

log = logging.getLogger(__name__)


class TrialMonitor:
    """The sweep side of one attempt at one trial.

    Args:
        conn: Redis client.
        job_id: the trial.
        others: the sweep's other trials' job ids.
        metric, goal: the sweep's objective.
        rule: the sweep's ``early_stopping`` (``{rule, min_epochs, min_trials}``), or None.
    """

    def __init__(self, conn, job_id: str, others: list[str], metric: str, goal: str, rule):
        self.conn, self.job_id, self.others = conn, job_id, others
        self.metric, self.goal, self.rule = metric, goal, rule
        self.seen = 0  # rows of the metric already taken into ``best``
        self.best: float | None = None
        self.reported = False

    def update(self, history: dict) -> float | None:
        """Take the rows added since the last call into the best value; returns it."""
        values = history.get(self.metric) or []
        fresh = sweeps.best_value(values[self.seen :], self.goal)
        self.seen = len(values)
        if fresh is not None and (self.best is None or self.better(fresh, self.best)):
            self.best, self.reported = fresh, False
        return self.best

    def better(self, a: float, b: float) -> bool:
        return a < b if self.goal == "min" else a > b

    def report(self, history: dict) -> None:
        """Store the best value so far, when it has changed (Redis errors propagate, as the
        flush's own do)."""
        self.update(history)
        if not self.reported and self.best is not None:
            sweeps.record_objective(self.conn, self.job_id, self.best)
            self.reported = True

    def should_stop(self, history: dict) -> bool:
        """Whether the median rule stops the trial now; if so, its reason is recorded and its
        cancel flag set."""
        epoch = len(history.get(self.metric) or [])
        if self.rule is None or epoch < self.rule["min_epochs"]:
            return False
        own = self.update(history)
        try:
            others = sweeps.values_at(self.conn, self.others, self.metric, epoch)
        except REDIS_ERRORS:
            return False  # compared again at the next flush
        if own is None or len(others) < self.rule["min_trials"]:
            return False
        median = statistics.median(others)
        if not self.better(median, own):
            return False
        best = "lowest" if self.goal == "min" else "highest"
        reason = (
            f"median stopping rule: its {best} {self.metric} by epoch {epoch}, {own:.6g}, is "
            f"worse than the median {median:.6g} of {len(others)} other trials at that epoch"
        )
        try:
            sweeps.stop_trial(self.conn, self.job_id, reason)
        except REDIS_ERRORS:
            return False
        log.info("job %s: %s", self.job_id, reason)
        return True


def for_job(conn: redis.Redis, record: JobRecord) -> TrialMonitor | None:
    """The monitor of a job that is a sweep's trial; None, without a Redis call, for others."""
    sweep_id = record.get("sweep_id")
    if sweep_id is None:
        return None
    sweep = sweeps.get_sweep(conn, sweep_id)
    if sweep is None:
        return None
    rule = sweep.get("early_stopping")
    others = [i for i in sweeps.trial_ids(conn, sweep_id) if i != record["id"]] if rule else []
    objective = sweep["objective"]
    return TrialMonitor(conn, record["id"], others, objective["metric"], objective["goal"], rule)
