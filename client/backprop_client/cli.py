"""``backprop``: submit, follow and use jobs from the shell, on the Python client.

Exit codes: 0 success; 1 a failed or canceled job (or a sweep canceled or without a best
trial), or any error from the service or the network; 2 bad usage or a request the service
refused as invalid (400/413/415/422); 130 interrupted (Ctrl-C); 141 the reader of the output
went away (``| head``), quietly. Errors print the server's
message and field errors, no traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Any

import requests

from backprop_client import cli_experiments
from backprop_client.cli_support import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    add_wait_arguments,
    follow,
    load_object,
    print_table,
)
from backprop_client.client import Client, progress_line
from backprop_client.errors import ApiError, ValidationError


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        client = Client(args.url, args.api_key)
        code = args.run(client, args)
        sys.stdout.flush()  # a reader that went away shows here, inside the try
        return code
    except BrokenPipeError:
        # Quietly, as Unix tools stop; stdout goes nowhere so that the exit flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ValidationError as error:
        print_error(error)
        return EXIT_USAGE
    except ApiError as error:
        print_error(error)
        return EXIT_FAILED
    except (UsageError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except requests.RequestException as error:
        print(f"error: cannot reach the service: {error}", file=sys.stderr)
        return EXIT_FAILED


def print_error(error: ApiError) -> None:
    """The server's message, then one line per field error."""
    print(f"error {error.status_code}: {error.message}", file=sys.stderr)
    for field, messages in _flatten(error.errors):
        print(f"  {field}: {messages}", file=sys.stderr)


def _flatten(errors: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(errors, dict):
        out = []
        for key, value in errors.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(errors, list) and all(isinstance(item, str) for item in errors):
        return [(prefix or "request", " ".join(errors))]
    return [(prefix or "request", json.dumps(errors))]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="backprop", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("BACKPROP_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("BACKPROP_API_KEY"))
    commands = parser.add_subparsers(required=True, metavar="command")

    submit = commands.add_parser("submit", help="submit a job from a JSON file")
    submit.add_argument("job", help="the job as JSON (network, training, data or dataset_id)")
    submit.add_argument("--data", help="a CSV, NPY or NPZ file to upload and train on")
    submit.add_argument("--target", nargs="+", help="the target column(s) of --data")
    add_wait_arguments(submit, "to its end")
    submit.set_defaults(run=run_submit)

    jobs = commands.add_parser("jobs", help="list or show jobs").add_subparsers(required=True)
    ls = jobs.add_parser("ls", help="jobs, newest first, as a table")
    ls.add_argument("--status", choices=["queued", "started", "finished", "failed", "canceled"])
    ls.add_argument(
        "--tag", action="append", default=[], help="only jobs with this tag (repeat: all of them)"
    )
    ls.add_argument("--name", help="only jobs whose name starts with this")
    ls.add_argument("--sweep", help="only this sweep's trials")
    ls.add_argument(
        "--sort",
        help="-created_at (the default), created_at, final_loss or a final metric; "
        "'-' first: highest first",
    )
    ls.add_argument("--limit", type=int, default=20, help="at most this many rows (20)")
    ls.set_defaults(run=run_jobs_ls)
    show = jobs.add_parser("show", help="one job as JSON")
    show.add_argument("id")
    show.set_defaults(run=run_jobs_show)

    logs = commands.add_parser("logs", help="a job's progress, one line per event")
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true", help="follow it until it ends")
    logs.set_defaults(run=run_logs)

    predict = commands.add_parser("predict", help="predict with a model")
    predict.add_argument("model", help="a model id or one of your aliases")
    predict.add_argument("--input", required=True, help="rows as CSV (no header) or JSON")
    predict.add_argument("--output", help="write outputs (and labels) as CSV here")
    predict.set_defaults(run=run_predict)

    datasets = commands.add_parser("datasets", help="datasets").add_subparsers(required=True)
    upload = datasets.add_parser("upload", help="upload a CSV, NPY or NPZ file")
    upload.add_argument("file")
    upload.add_argument("--target", nargs="+", help="target column name(s) or index(es)")
    upload.set_defaults(run=run_datasets_upload)
    cli_experiments.add_commands(commands)
    return parser


def run_submit(client: Client, args: argparse.Namespace) -> int:
    body = load_object(args.job, "a job")
    if args.data:
        dataset = client.upload_dataset(args.data, target=args.target)
        body.pop("data", None)
        body["dataset_id"] = dataset.id
    job = client.submit(**body)
    print(job.id)
    if not args.wait:
        return 0
    record = follow(job, "job", args.cancel_on_interrupt)
    return EXIT_INTERRUPTED if record is None else report(record)


def report(record: dict) -> int:
    """Print a job's outcome; its exit code."""
    if record["status"] == "finished":
        print(f"finished: model {record['model_id']}")
        return 0
    error = record.get("error") or {}
    code = error.get("code", record["status"]) if isinstance(error, dict) else record["status"]
    message = error.get("message", "") if isinstance(error, dict) else str(error)
    print(f"{record['status']}: {code}: {message}", file=sys.stderr)
    return EXIT_FAILED


def run_jobs_ls(client: Client, args: argparse.Namespace) -> int:
    rows, cursor = [], None
    filters = {
        "status": args.status,
        "tags": args.tag,
        "name": args.name,
        "sweep_id": args.sweep,
        "sort": args.sort,
    }
    while len(rows) < args.limit:  # the server filters; a page may be short: page on
        page, cursor = client.list_jobs(limit=100, cursor=cursor, **filters)
        rows += page
        if not cursor:
            break
    table = []
    for job in rows[: args.limit]:
        progress = job.get("progress") or {}
        epoch = f"{progress.get('epoch', 0)}/{progress.get('epochs', '?')}"
        loss = progress.get("loss")
        table.append(
            (job["id"], job["status"], epoch, "" if loss is None else f"{loss:.6g}",
             job.get("created_at") or "", job.get("name") or "", ",".join(job.get("tags") or []))
        )  # fmt: skip
    print_table(("ID", "STATUS", "EPOCH", "LOSS", "CREATED", "NAME", "TAGS"), table)
    return 0


def run_jobs_show(client: Client, args: argparse.Namespace) -> int:
    print(json.dumps(client.job(args.id).record, indent=2))
    return 0


def run_logs(client: Client, args: argparse.Namespace) -> int:
    job = client.job(args.id)
    if not args.follow:
        history = job.history()
        columns = dict(history) if not isinstance(history, dict) else history
        names = list(columns)
        for i in range(len(columns.get("epoch", []))):
            print(" ".join(f"{name}={_cell(columns[name][i])}" for name in names))
        return 0
    for name, data in job.events():
        if name == "progress":
            print(progress_line(data), flush=True)
        elif name == "status":
            print(f"status {data['status']}", flush=True)
    return report(job.refresh())


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def run_predict(client: Client, args: argparse.Namespace) -> int:
    rows = read_rows(args.input)
    result = client.predict(args.model, rows)  # one request: an alias resolves on the server
    outputs, labels = result["outputs"], result.get("labels")
    if args.output:
        with open(args.output, "w", newline="") as handle:
            writer = csv.writer(handle)
            width = len(outputs[0]) if outputs else 0
            header = [f"output_{i}" for i in range(width)] + (["label"] if labels else [])
            writer.writerow(header)
            for i, row in enumerate(outputs):
                writer.writerow(row + ([labels[i]] if labels else []))
    else:
        print(json.dumps(result))
    return 0


def read_rows(path: str) -> list[list[float]]:
    """Rows from a JSON file (``[[...]]`` or ``{"inputs": [[...]]}``) or a CSV file.

    A CSV's first row is skipped when it is not all numbers (a header).
    """
    with open(path) as handle:
        if path.lower().endswith(".json"):
            data = json.load(handle)
            return data["inputs"] if isinstance(data, dict) else data
        rows = [row for row in csv.reader(handle) if row]
    try:
        return [[float(cell) for cell in row] for row in rows]
    except ValueError:
        try:
            return [[float(cell) for cell in row] for row in rows[1:]]
        except ValueError as error:
            raise UsageError(f"{path}: {error}") from None


def run_datasets_upload(client: Client, args: argparse.Namespace) -> int:
    print(json.dumps(client.upload_dataset(args.file, target=args.target).info, indent=2))
    return 0
