"""Elementwise work on flat buffers, split over the cores.

NumPy releases the GIL inside a ufunc's loop, so contiguous pieces of one flat buffer can be
updated by different threads at once. Only elementwise work is split: each element's result is
computed by the same operations whatever the split, so the bytes are the same with one thread
or many (a reduction split in two would round differently, and is never split here).

A split only pays when another core is idle. On a host whose cores are all busy (2 cores, a
load of 7, as measured), a 235k-parameter Adam step took 231 µs in two pieces and 205 µs
whole (medians), so ``Split.run`` splits only while the load average leaves a core free.
"""

import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# The smallest piece worth a thread: below this, handing work over costs more than the core
# saves (a dispatch is some 10-20 µs; a pass over 32k float32s about 5 µs).
MIN_PIECE = 32_768
# More pieces than cores, so that a thread the host delays leaves little for the others to wait on.
PIECES_PER_CORE = 2
# How often the load average is read again, in seconds (a read costs some microseconds).
LOAD_CHECK_SECONDS = 1.0

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid = 0
_idle = (False, -LOAD_CHECK_SECONDS)  # (a core is idle, when that was read)


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def idle_core() -> bool:
    """Whether the 1-minute load average leaves at least one of our cores idle."""
    global _idle
    now = time.monotonic()
    if now - _idle[1] >= LOAD_CHECK_SECONDS:
        try:
            idle = os.getloadavg()[0] < cores() - 1
        except OSError:  # no load average to read
            idle = False
        _idle = (idle, now)
    return _idle[0]


def bounds(size: int, pieces: int) -> list[slice]:
    """``pieces`` contiguous slices covering ``range(size)``, as equal as can be."""
    edges = [size * i // pieces for i in range(pieces + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _pool() -> ThreadPoolExecutor:
    """One executor per process: a forked child inherits the object but not its threads."""
    global _executor, _executor_pid
    with _lock:
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(max(cores() - 1, 1), thread_name_prefix="elementwise")
            _executor_pid = os.getpid()
        return _executor


class Split:
    """Views of the same flat buffers, one set per piece, and a way to run work on each.

    Args:
        arrays: 1-D arrays of one length, or None (passed through as None to every piece).
        pieces: how many pieces, always split; by default ``PIECES_PER_CORE`` per core, each at
            least ``MIN_PIECE`` long, split only while ``idle_core()``.
    """

    def __init__(self, arrays: Sequence[np.ndarray | None], pieces: int | None = None):
        size = next(a.shape[0] for a in arrays if a is not None)
        self.whole = tuple(arrays)
        self.always = pieces is not None
        if pieces is None:
            pieces = max(1, min(PIECES_PER_CORE * cores(), size // MIN_PIECE))
        self.parts = [
            tuple(None if a is None else a[piece] for a in arrays) for piece in bounds(size, pieces)
        ]

    def run(self, fn: Callable, *args) -> None:
        """``fn(*args, *part)`` for every part, returning when all are done.

        This thread and the pool's take the next untaken part until none is left, so a pool
        thread that a busy host does not schedule in time costs nothing: this thread does its
        parts (a fork-join that waits for every thread would wait a whole time slice).
        """
        parts = self.parts
        if len(parts) == 1 or not (self.always or idle_core()):
            fn(*args, *self.whole)
            return
        job = _Job(fn, args, parts, np.geterr())
        pool = _pool()
        for _ in range(min(pool._max_workers, len(parts) - 1)):
            pool.submit(job.work)
        job.take_parts()
        job.wait()


class _Job:
    """One ``Split.run``: parts handed out by a counter, finished parts counted."""

    def __init__(self, fn: Callable, args: tuple, parts: list[tuple], errstate: dict):
        self.fn, self.args, self.parts, self.errstate = fn, args, parts, errstate
        self.next = itertools.count().__next__  # atomic under the GIL
        self.done = 0
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def take_parts(self) -> None:
        n = len(self.parts)
        while (i := self.next()) < n:
            try:
                self.fn(*self.args, *self.parts[i])
            except BaseException as exc:  # re-raised on the caller's thread by wait()
                self.error = exc
            with self.cond:
                self.done += 1
                if self.done == n:
                    self.cond.notify_all()

    def work(self) -> None:
        # NumPy's error state is per thread: a pool thread takes the caller's, so an overflow
        # the training loop ignores is ignored here too.
        with np.errstate(**self.errstate):
            self.take_parts()

    def wait(self) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.done == len(self.parts))
        if self.error is not None:
            raise self.error
