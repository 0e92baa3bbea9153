"""Hyperparameter sweeps as plain logic: expand ``parameters`` into trials, check every trial
as ``POST /v1/jobs`` would, store and queue them, cancel them, and show them.

Choices, and why:

- **Trial order.** Parameters are taken in the sorted order of their paths, whatever order the
  request's JSON object has (clients do not all keep it). A grid is the cartesian product of
  their ``values`` in that order, the last path varying fastest. A random search draws
  ``max_trials`` trials from ``numpy.random.default_rng(seed)``, each trial's values in path
  order, so the same parameters and seed give the same trials; a seed is chosen and recorded
  when the request gives none.
- **Every trial is checked at submit**, through ``JobCreateSchema`` and
  ``submission.plan``: the first trial that fails is a 422 naming the trial, its values and the
  parameter at fault, before anything is stored.
- **Budget.** Each trial must fit the per-job limits, and the sweep as a whole must fit the
  compute budget of one job (``MAX_TRAINING_FLOPS``, over the sum of its trials): a sweep is
  one submission and may not buy more worker time than one. ``MAX_SWEEP_TRIALS`` bounds the
  work of checking and storing it.
- **Quota.** A sweep takes ``parallel`` of its tenant's ``MAX_ACTIVE_JOBS`` slots, not one per
  trial: only that many of its trials are ever queued or started (``store.sweeps``), and
  counting waiting trials would make the active-job cap a cap on sweep size, which
  ``MAX_SWEEP_TRIALS`` owns. ``parallel`` above ``MAX_ACTIVE_JOBS`` could never run and is a
  422.
- **Objective value.** A trial's value is the best of its ``objective.metric`` over the epochs
  it has run (the lowest for ``goal: min``), as Katib's default metric strategy and as
  ``early_stopping.restore_best`` keep the best epoch's weights; its worker keeps it on the
  job record at each flush (``workers.sweep_trials``). The best trial so far is the
  one with the best value among all trials that have one (running ones too); ties go to the
  earlier trial.
"""

import itertools
import logging
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import redis
from marshmallow import ValidationError

import store
from backprop.metrics import METRIC_NAMES, metric_kind
from store import FINAL_STATUSES, JobStatus, queue, sweeps

from . import submission
from .auth import Tenant
from .errors import flatten
from .exceptions import InvalidJob, TooManyActiveJobs
from .metrics import JOBS_SUBMITTED
from .schemas import JobCreateSchema

# What a parameter may set: a key of the job's network, training or preprocessing, or the
# targets; never its data (that is stored once per trial) or callbacks.
ROOTS = ("network", "training", "preprocessing", "targets")
PATH = re.compile(rf"(?:{'|'.join(ROOTS)})(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*")
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]")
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")

log = logging.getLogger(__name__)


class PathError(ValueError):
    """A parameter's path does not lead anywhere in the base job."""


def steps(path: str) -> list[str | int]:
    """``"network.layers[0].units"`` -> ``["network", "layers", 0, "units"]``."""
    root = re.match(r"[A-Za-z_][A-Za-z0-9_]*", path).group(0)
    rest = path[len(root) :]
    return [root] + [key if key else int(index) for key, index in _STEP.findall(rest)]


def set_path(body: dict, path: str, value) -> dict:
    """A copy of ``body`` with ``path`` set to ``value``; only the containers on the path are
    copied (the data arrays are shared, not copied once per trial). A missing object on the
    path is created (``preprocessing.standardize`` in a job without ``preprocessing``); a list
    item must exist.

    Raises:
        PathError: the path passes through something that is not an object or a list, or an
            index is out of range.
    """
    keys = steps(path)
    out = dict(body)
    node = out
    for depth, key in enumerate(keys[:-1]):
        if isinstance(key, int) and not _has(node, key):
            raise PathError(f"{_spell(keys[:depth])} has no item {key} in the job.")
        child = node[key] if _has(node, key) else None
        if child is None and not isinstance(keys[depth + 1], int):
            child = {}
        where = _spell(keys[: depth + 1])
        if isinstance(keys[depth + 1], int):
            if not isinstance(child, list):
                raise PathError(f"{where} is not a list in the job.")
            child = list(child)
        elif not isinstance(child, dict):
            raise PathError(f"{where} is not an object in the job.")
        else:
            child = dict(child)
        node[key] = child
        node = child
    last = keys[-1]
    if isinstance(last, int) and not _has(node, last):
        raise PathError(f"{_spell(keys[:-1])} has no item {last} in the job.")
    node[last] = value
    return out


def _has(node, key) -> bool:
    if isinstance(key, int):
        return isinstance(node, list) and 0 <= key < len(node)
    return isinstance(node, dict) and key in node


def _spell(keys: list) -> str:
    return "".join(
        f"[{k}]" if isinstance(k, int) else (f".{k}" if i else k) for i, k in enumerate(keys)
    )


def method(parameters: Mapping) -> str:
    """``random`` when a parameter has a distribution, else ``grid``."""
    return "random" if any("distribution" in p for p in parameters.values()) else "grid"


def grid_size(parameters: Mapping) -> int:
    return math.prod(len(p["values"]) for p in parameters.values())


def expand(parameters: Mapping, max_trials: int | None = None, seed: int | None = None) -> list:
    """The trials' values: ``[{path: value}, ...]``, each in sorted path order.

    Args:
        parameters: ``{path: {"values": [...]}}`` for a grid; with any ``distribution``, a
            random search, where a bare ``values`` is a ``choice``.
        max_trials, seed: a random search's size and its generator's seed.
    """
    paths = sorted(parameters)
    if method(parameters) == "grid":
        grid = itertools.product(*(parameters[p]["values"] for p in paths))
        return [dict(zip(paths, values, strict=True)) for values in grid]
    rng = np.random.default_rng(seed)
    return [{p: draw(rng, parameters[p]) for p in paths} for _ in range(max_trials)]


def draw(rng: np.random.Generator, parameter: Mapping):
    """One value of a parameter, as a JSON-able Python number (or a chosen value)."""
    kind = parameter.get("distribution", "choice")
    if kind == "choice":
        return parameter["values"][int(rng.integers(len(parameter["values"])))]
    low, high = parameter["low"], parameter["high"]
    if kind == "uniform":
        return float(rng.uniform(low, high))
    if kind == "log_uniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return int(rng.integers(int(low), int(high), endpoint=True))  # int_uniform


def history_columns(spec: dict) -> list[str]:
    """The history columns a job of normalised ``spec`` records: loss, its metrics and, with a
    validation set, their ``val_`` twins (the engine's rule, as early stopping's monitors)."""
    training = spec["training"]
    names = ["loss", *METRIC_NAMES[metric_kind(spec["network"], training["loss"])]]
    if training["validation"]:
        names += [f"val_{name}" for name in names]
    return names


# -- planning: every trial checked and costed -------------------------------------------------


@dataclass(frozen=True)
class SweepPlan:
    """A sweep checked and costed, ready to be stored: its trials' values and plans."""

    request: dict
    method: str
    seed: int | None
    values: list[dict]
    plans: list[submission.Plan]
    cost: dict


def plan(conn: redis.Redis, request: dict, tenant: Tenant, config: Mapping) -> SweepPlan:
    """Expand a loaded ``SweepCreateSchema`` and check each trial as ``POST /v1/jobs`` would.

    Raises:
        InvalidJob: naming the trial and the parameter at fault (or the sweep's field).
    """
    parameters = request["parameters"]
    kind = method(parameters)
    limit = config["MAX_SWEEP_TRIALS"]
    count = grid_size(parameters) if kind == "grid" else request["max_trials"]
    if count > limit:
        field = "parameters" if kind == "grid" else "max_trials"
        message = f"The sweep has {count:,} trials; the limit is {limit:,}."
        raise InvalidJob(message, {field: [message]})
    if request["parallel"] > config["MAX_ACTIVE_JOBS"]:
        message = f"Must be at most {config['MAX_ACTIVE_JOBS']} (MAX_ACTIVE_JOBS)."
        raise InvalidJob(f"parallel: {message}", {"parallel": [message]})
    seed = request.get("seed")
    if kind == "random" and seed is None:
        seed = random.SystemRandom().randrange(2**32)  # recorded, so the sweep can be repeated
    values = expand(parameters, request.get("max_trials"), seed)
    plans = [_plan_trial(conn, request, i, v, tenant, config) for i, v in enumerate(values)]
    cost = {
        key: sum(p.cost[key] for p in plans)
        for key in ("parameters", "flops_per_epoch", "total_flops", "weight_bytes", "memory_bytes")
    }
    if cost["total_flops"] > config["MAX_TRAINING_FLOPS"]:
        message = (
            f"The sweep's {len(plans)} trials need about {cost['total_flops']:.3g} FLOPs in all; "
            f"the compute budget of one submission is {config['MAX_TRAINING_FLOPS']:.3g}."
        )
        raise InvalidJob(message, {"parameters": [message]})
    return SweepPlan(request, kind, seed, values, plans, cost)


def _plan_trial(conn, request: dict, index: int, values: dict, tenant, config) -> submission.Plan:
    body = request["job"]
    for path, value in values.items():
        try:
            body = set_path(body, path, value)
        except PathError as exc:
            raise InvalidJob(str(exc), {f"parameters.{path}": [str(exc)]}) from exc
    try:
        job = JobCreateSchema().load(body)
        # Parameters never set callbacks (ROOTS): the first trial's check holds for all.
        trial = submission.plan(conn, job, tenant, config, check_hooks=index == 0)
    except ValidationError as exc:
        raise trial_error(index, values, flatten(exc.messages)) from exc
    except InvalidJob as exc:
        raise trial_error(index, values, exc.errors or {"job": [exc.message]}) from exc
    metric = request["objective"]["metric"]
    columns = history_columns(trial.spec)
    if metric not in columns:
        message = f"Trial {index} records {', '.join(columns)}, not {metric}."
        if metric.startswith("val_") and not trial.spec["training"]["validation"]:
            message += " A val_ metric needs a validation set (training.validation)."
        raise InvalidJob(message, {"objective.metric": [message]})
    return trial


def trial_error(index: int, values: dict, errors: dict) -> InvalidJob:
    """A trial's errors, each keyed by the parameter it is about (``parameters.<path>``) when
    one is, else by ``trials.<index>.<path>``; the message names the trial and its values."""
    described = ", ".join(f"{path}={value!r}" for path, value in values.items())
    dotted = {path: ".".join(str(s) for s in steps(path)) for path in values}
    keyed: dict[str, list[str]] = {}
    for field, messages in errors.items():
        owner = next(
            (
                p
                for p, d in dotted.items()
                if field == d or field.startswith(d + ".") or d.startswith(field + ".")
            ),
            None,
        )
        if owner is None:
            keyed.setdefault(f"trials.{index}.{field}", []).extend(messages)
        elif field == dotted[owner]:
            keyed.setdefault(f"parameters.{owner}", []).extend(messages)
        else:
            keyed.setdefault(f"parameters.{owner}", []).extend(f"{field}: {m}" for m in messages)
    field, messages = next(iter(errors.items()))
    message = f"Trial {index} ({described}) is invalid: {field}: {' '.join(map(str, messages))}"
    return InvalidJob(message, keyed)


def dry_run(sweep: SweepPlan, config: Mapping) -> dict:
    """What a dry run answers: the trial count, the summed estimate and the limits."""
    answer = submission.dry_run(sweep.plans[0], config)
    return {**answer, "trials": len(sweep.plans), "estimate": sweep.cost}


# -- storing, queueing, cancelling ------------------------------------------------------------


def submit(
    conn: redis.Redis,
    sweep: SweepPlan,
    tenant: str,
    max_active_jobs: int,
    request_id: str | None = None,
) -> sweeps.SweepRecord:
    """Store the sweep and its trials, and queue the first ``parallel`` of them.

    Raises:
        TooManyActiveJobs: the tenant has fewer than ``parallel`` active-job slots free.
    """
    request = sweep.request
    sweep_id = store.new_id()
    ids = [store.new_id() for _ in sweep.plans]
    parallel = min(request["parallel"], len(ids))
    record: sweeps.SweepRecord = {
        "id": sweep_id,
        "tenant": tenant,
        "created_at": store.now_iso(),
        "method": sweep.method,
        "seed": sweep.seed,
        "max_trials": request.get("max_trials"),
        "parameters": request["parameters"],
        "objective": request["objective"],
        "parallel": request["parallel"],
        "early_stopping": request.get("early_stopping"),
        "trials": len(ids),
        "canceled": False,
        "request_id": request_id,
    }
    try:
        for job_id in ids[:parallel]:
            if not store.reserve_job_slot(conn, tenant, job_id, max_active_jobs):
                raise TooManyActiveJobs(
                    f"Too many active jobs: the sweep needs {parallel} of the {max_active_jobs} "
                    "queued or started at once."
                )
        trials = []
        trials_values = zip(ids, sweep.plans, sweep.values, strict=True)
        for i, (job_id, trial, values) in enumerate(trials_values):
            trials.append(
                submission.store_plan(
                    conn, job_id, trial, tenant, request_id, sweep_id=sweep_id, parameters=values
                )
            )
            if i >= parallel:
                sweeps.hold(conn, job_id, tenant)
        sweeps.create_sweep(conn, record, ids, parallel)
        for trial in trials[:parallel]:
            queue.enqueue(conn, trial)
    except BaseException:
        # Nothing of a refused sweep stays: its trials, their quota slots, its record.
        for job_id in ids:
            store.discard_job(conn, job_id, tenant)
        sweeps.discard_sweep(conn, sweep_id, tenant)
        raise
    JOBS_SUBMITTED.inc(len(ids))
    log.info("sweep %s stored: %d trials, %d queued", sweep_id, len(ids), parallel)
    return record


def cancel(conn: redis.Redis, sweep_id: str, tenant: str, data_ttl_seconds: int) -> int:
    """Cancel a sweep: no trial is queued from now on, waiting and queued trials are canceled
    at once, started ones at their next epoch (the cancel flag).

    Returns:
        How many started trials were asked to stop.
    """
    stopping = 0
    for record in sweeps.load_trials(conn, sweeps.cancel_sweep(conn, sweep_id)):
        if record.get("status") is None or record["status"] in FINAL_STATUSES:  # gone or ended
            continue
        if not submission.cancel(conn, record["id"], tenant, data_ttl_seconds):
            stopping += 1
    return stopping


# -- showing -------------------------------------------------------------------------------


def view(record: sweeps.SweepRecord, trials: list[store.JobRecord]) -> dict:
    """A sweep as GET /v1/sweeps/{id} shows it, from its record and its trials' job records
    (``store.sweeps.load_trials``): a few small hashes, whatever the trials' lengths, since
    each trial's worker keeps its objective value on its record at each flush."""
    goal = record["objective"]["goal"]
    rows = []
    for index, job in enumerate(trials):
        rows.append(
            {
                "index": index,
                "job_id": job["id"],
                "parameters": job.get("parameters"),
                "status": job.get("status"),
                "epochs": (job.get("progress") or {}).get("epoch", 0),
                "objective_value": job.get("objective_value"),
                "error": job.get("error"),
            }
        )
    counts = {str(status): 0 for status in JobStatus}
    for row in rows:
        if row["status"] in counts:
            counts[row["status"]] += 1
    scored = [row for row in rows if row["objective_value"] is not None]
    sign = 1 if goal == "min" else -1
    best = min(scored, key=lambda r: (sign * r["objective_value"], r["index"]), default=None)
    ended = sum(counts[str(s)] for s in FINAL_STATUSES)
    if record.get("canceled"):
        status = "canceled"
    else:
        status = "finished" if ended == len(rows) else "running"
    return {
        "id": record["id"],
        "status": status,
        "created_at": record["created_at"],
        "method": record["method"],
        "seed": record.get("seed"),
        "max_trials": record.get("max_trials"),
        "parameters": record["parameters"],
        "objective": record["objective"],
        "parallel": record["parallel"],
        "early_stopping": record.get("early_stopping"),
        "counts": counts,
        "best_trial": best,
        "trials": rows,
    }
