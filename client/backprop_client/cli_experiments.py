"""The CLI's ``sweeps`` and ``aliases`` commands (exit codes as in ``backprop_client.cli``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from backprop_client.aliases import Alias
from backprop_client.cli_support import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    add_wait_arguments,
    follow,
    load_object,
    print_table,
)
from backprop_client.client import Client
from backprop_client.sweeps import sweep_line


def add_commands(commands: Any) -> None:
    """Add ``sweeps`` and ``aliases`` to the CLI's subcommands (argparse's subparsers)."""
    sweeps = commands.add_parser("sweeps", help="hyperparameter sweeps").add_subparsers(
        required=True
    )
    submit = sweeps.add_parser("submit", help="start a sweep from a JSON file")
    submit.add_argument("sweep", help="the sweep as JSON: job, parameters, objective, parallel...")
    add_wait_arguments(submit, "until every trial ends")
    submit.add_argument("--dry-run", action="store_true", help="check it and print the estimate")
    submit.set_defaults(run=run_sweeps_submit)
    show = sweeps.add_parser("show", help="a sweep and its trials as a table")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="the sweep as the API returns it")
    show.set_defaults(run=run_sweeps_show)
    cancel = sweeps.add_parser("cancel", help="cancel a sweep and its unfinished trials")
    cancel.add_argument("id")
    cancel.set_defaults(run=run_sweeps_cancel)

    aliases = commands.add_parser("aliases", help="model aliases").add_subparsers(required=True)
    put = aliases.add_parser("set", help="point an alias at a model (create or move it)")
    put.add_argument("name")
    put.add_argument("model", help="a model id (or another alias)")
    put.set_defaults(run=run_aliases_set)
    get = aliases.add_parser("show", help="an alias and its moves, newest first")
    get.add_argument("name")
    get.set_defaults(run=run_aliases_show)
    ls = aliases.add_parser("ls", help="your aliases and their models")
    ls.set_defaults(run=run_aliases_ls)
    rm = aliases.add_parser("rm", help="delete an alias (its model stays)")
    rm.add_argument("name")
    rm.set_defaults(run=run_aliases_rm)


def run_sweeps_submit(client: Client, args: argparse.Namespace) -> int:
    body = load_object(args.sweep, "a sweep")
    if args.dry_run:
        print(json.dumps(client.start_sweep(body, dry_run=True), indent=2))
        return 0
    sweep = client.start_sweep(body)
    print(sweep.id, flush=True)
    if not args.wait:
        return 0
    record = follow(sweep, "sweep", args.cancel_on_interrupt)
    if record is None:
        return EXIT_INTERRUPTED
    print_trials(record)
    return report(record)


def report(record: dict) -> int:
    """Print a sweep's outcome; its exit code: 0 when it finished with a best trial."""
    best = record.get("best_trial")
    if record["status"] == "finished" and best is not None:
        metric = record["objective"]["metric"]
        print(
            f"best: trial {best['index']} job {best['job_id']} "
            f"{metric} {best['objective_value']:.6g}"
        )
        return 0
    why = "canceled" if record["status"] == "canceled" else "no trial has an objective value"
    print(f"{record['status']}: {why}", file=sys.stderr)
    return EXIT_FAILED


def print_trials(record: dict) -> None:
    """One line per trial: index, job, status, epochs, objective value, parameters."""
    rows = []
    for trial in record["trials"]:
        value = trial["objective_value"]
        parameters = ",".join(f"{k}={v}" for k, v in (trial["parameters"] or {}).items())
        rows.append(
            (trial["index"], trial["job_id"], trial["status"], trial["epochs"],
             "" if value is None else f"{value:.6g}", parameters)
        )  # fmt: skip
    metric = record["objective"]["metric"].upper()
    print_table(("TRIAL", "JOB", "STATUS", "EPOCHS", metric, "PARAMETERS"), rows)


def run_sweeps_show(client: Client, args: argparse.Namespace) -> int:
    record = client.get_sweep(args.id).record
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(sweep_line(record))
    print_trials(record)
    return 0


def run_sweeps_cancel(client: Client, args: argparse.Namespace) -> int:
    sweep = client.get_sweep(args.id)
    sweep.cancel()
    print(sweep_line(sweep.record))
    return 0


def run_aliases_set(client: Client, args: argparse.Namespace) -> int:
    print_alias(client.set_alias(args.name, args.model))
    return 0


def run_aliases_show(client: Client, args: argparse.Namespace) -> int:
    alias = client.alias(args.name)
    print_alias(alias)
    rows = [
        (move["at"], move["by"], move.get("key") or "", move["from"] or "", move["to"])
        for move in alias.history
    ]
    print_table(("AT", "BY", "KEY", "FROM", "TO"), rows)
    return 0


def print_alias(alias: Alias) -> None:
    print(f"{alias.name} -> {alias.model_id}")


def run_aliases_ls(client: Client, args: argparse.Namespace) -> int:
    print_table(("NAME", "MODEL"), sorted(client.aliases().items()))
    return 0


def run_aliases_rm(client: Client, args: argparse.Namespace) -> int:
    client.delete_alias(args.name)
    return 0
