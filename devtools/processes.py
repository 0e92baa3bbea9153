"""Waiting for child processes to get ready, stopping them, and reading their CPU time."""

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    process: subprocess.Popen | None = None,
    what: str = "condition",
) -> None:
    """Poll ``check`` until it returns True.

    Args:
        check: Returns True when the wait is over; should not raise for "not yet".
        timeout: Seconds before giving up.
        process: If given, the process whose exit makes further waiting pointless.
        what: Named in the error messages.

    Raises:
        RuntimeError: ``process`` exited first.
        TimeoutError: ``check`` stayed False for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:g} s")
        time.sleep(0.1)


def stop_all(processes: Sequence[subprocess.Popen], timeout: float) -> list[subprocess.Popen]:
    """SIGTERM every process, wait up to ``timeout`` seconds in all, then SIGKILL the rest.

    All are signalled before any is waited for, so they shut down in parallel.

    Returns:
        The processes that had to be killed.
    """
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    killed = []
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            killed.append(process)
    return killed


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
