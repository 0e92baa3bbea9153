"""What waiting for a job (``Job.wait``) and for a sweep (``Sweep.wait``) share."""

from __future__ import annotations

import time
from typing import TextIO

FINAL_STATUSES = ("finished", "failed", "canceled")  # a job's (so a trial's) final statuses


def draw(line: str, stream: TextIO) -> None:
    """Redraw the one progress line on ``stream`` (a terminal's stderr)."""
    stream.write("\r" + line.ljust(79))
    stream.flush()


def check(deadline: float | None, what: str) -> None:
    """Raise ``TimeoutError`` once past ``deadline`` (a ``time.monotonic()`` value) waiting
    for ``what`` (the job, the sweep)."""
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(f"The {what} did not end before the timeout.")
