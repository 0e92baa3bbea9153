"""What the CLI's commands share: the usage error, JSON files, tables on stdout, and
following a job or a sweep with ``--wait``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any, Protocol

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130  # see the CLI's docstring
# The reader of our output went away (`| head`): what a Unix tool killed by SIGPIPE exits with.
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """Bad arguments or input files: exit 2."""


def load_object(path: str, what: str) -> dict[str, Any]:
    """The JSON object in the file ``path`` (``what`` names it in the error)."""
    try:
        with open(path) as handle:
            body = json.load(handle)
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}: not JSON: {error}") from None
    if not isinstance(body, dict):
        raise UsageError(f"{path}: {what} is a JSON object")
    return body


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``header`` and ``rows`` as left-aligned columns two spaces apart."""
    table = [tuple(str(cell) for cell in row) for row in (header, *rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


class Followed(Protocol):
    """What ``follow`` needs of a ``Job`` or a ``Sweep``."""

    id: str

    def wait(self, progress: bool = ...) -> dict: ...

    def cancel(self) -> dict: ...


def add_wait_arguments(parser: argparse.ArgumentParser, until: str) -> None:
    """``--wait`` (follow it ``until`` ...) and ``--cancel-on-interrupt``, as ``follow`` takes."""
    parser.add_argument("--wait", action="store_true", help=f"follow it {until}")
    parser.add_argument(
        "--cancel-on-interrupt", action="store_true", help="with --wait: cancel it on Ctrl-C"
    )


def follow(thing: Followed, kind: str, cancel_on_interrupt: bool) -> dict | None:
    """Wait for ``thing`` (a ``kind``: job or sweep) with progress on stderr; its final record,
    or None when interrupted (after asking the service to cancel it if ``cancel_on_interrupt``).
    """
    if cancel_on_interrupt:
        # Ctrl-C from a terminal reaches the whole process group; SIGTERM is treated the same.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return thing.wait(progress=True)
    except KeyboardInterrupt:
        if cancel_on_interrupt:
            thing.cancel()
            print(f"interrupted: asked the service to cancel {kind} {thing.id}", file=sys.stderr)
        return None
