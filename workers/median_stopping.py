"""The median stopping rule of a sweep's trials (as Vertex AI and Katib offer it).

At a progress flush past ``min_epochs``, a trial whose best objective value so far is worse
than the median of the other trials' values at the same epoch is stopped: it ends ``canceled``
with the error ``early_stopped`` and the reason. Only trials that have reached that epoch
count, and at least ``min_trials`` of them must have (finished and stopped ones too, up to the
epochs they ran).

The trial's own values are the trainer's history, in memory; the others' are one row each,
read in one pipelined round trip per flush (``store.sweeps.values_at``): nothing per epoch.
The trial's best so far, not its latest, is compared, so a trial is not stopped for one noisy
epoch; the others' values at the epoch are their latest there, which is what a stored row is.
"""

import logging
import statistics

import redis

from store import JobRecord, sweeps

from .progress import REDIS_ERRORS

log = logging.getLogger(__name__)


class MedianStopping:
    """Callable on the trainer's history at each flush; True when the trial is stopped.

    Args:
        conn: Redis client.
        job_id: the trial.
        others: the sweep's other trials' job ids.
        metric, goal: the sweep's objective.
        min_epochs: no trial is stopped before this epoch.
        min_trials: other trials that must have reached the epoch compared.
    """

    def __init__(self, conn, job_id, others, metric, goal, min_epochs, min_trials):
        self.conn, self.job_id, self.others = conn, job_id, others
        self.metric, self.goal = metric, goal
        self.min_epochs, self.min_trials = min_epochs, min_trials

    def __call__(self, history: dict) -> bool:
        values = history.get(self.metric) or []
        epoch = len(values)
        if epoch < self.min_epochs:
            return False
        own = min(values) if self.goal == "min" else max(values)
        try:
            others = sweeps.values_at(self.conn, self.others, self.metric, epoch)
        except REDIS_ERRORS:
            return False  # compared again at the next flush
        if len(others) < self.min_trials:
            return False
        median = statistics.median(others)
        if not (own > median if self.goal == "min" else own < median):
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


def for_trial(conn: redis.Redis, record: JobRecord) -> MedianStopping | None:
    """The rule for a job, when it is the trial of a sweep that asks for it; a job outside
    sweeps costs no Redis call."""
    sweep_id = record.get("sweep_id")
    if sweep_id is None:
        return None
    sweep = sweeps.get_sweep(conn, sweep_id)
    rule = None if sweep is None else sweep.get("early_stopping")
    if not rule or rule.get("rule") != "median":
        return None
    others = [i for i in sweeps.trial_ids(conn, sweep_id) if i != record["id"]]
    objective = sweep["objective"]
    return MedianStopping(
        conn,
        record["id"],
        others,
        objective["metric"],
        objective["goal"],
        rule["min_epochs"],
        rule["min_trials"],
    )
