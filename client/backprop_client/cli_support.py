"""What the CLI's commands share: the usage error, JSON files and tables on stdout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

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
