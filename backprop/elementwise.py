"""Elementwise work on flat buffers, split over the cores.

NumPy releases the GIL inside a ufunc's loop, so contiguous pieces of one flat buffer can be
updated by different threads at once. Only elementwise work is split: each element's result is
computed by the same operations whatever the split, so the bytes are the same with one thread
or many (a reduction split in two would round differently, and is never split here).

Whether a split pays depends on the host and the work, so ``Split.run`` measures it: now and
then it times a few runs each way, alternating, and keeps the faster by median. Measured on
2 cores (235k parameters, Adam, medians of 500 steps): float64 ran in 337 µs split against
569 µs whole (its square roots are compute-bound), float32 in 202 against 205 µs (its passes
are memory-bound: two threads do not raise the bandwidth), and on a busy host (a load of 7)
float32 took 231 µs split against 205 µs whole. Inside a training loop, OpenBLAS's threads
spin on the other core for a while after each matrix product, and the trials then pick whole
(float64 as well). A load-average rule could not see any of this: on 2 cores the training
process's own load already hid the idle core.
"""

import itertools
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# The smallest piece worth a thread: below this, handing work over costs more than the core
# saves (a dispatch is some 10-20 µs; a pass over 32k float32s about 5 µs).
MIN_PIECE = 32_768
# Runs of each way (whole, split) a trial times before it picks one.
TRIAL_RUNS = 5
# How long a pick holds before the next trial: the host's load changes.
TRIAL_EVERY_SECONDS = 2.0

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid = 0
_clock = time.perf_counter


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
        pieces: how many pieces, always split; by default one per core, each at least
            ``MIN_PIECE`` long, split when trials measure that it pays.
    """

    def __init__(self, arrays: Sequence[np.ndarray | None], pieces: int | None = None):
        size = next(a.shape[0] for a in arrays if a is not None)
        self.whole = tuple(arrays)
        self.always = pieces is not None
        if pieces is None:
            pieces = max(1, min(cores(), size // MIN_PIECE))
        self.parts = [
            tuple(None if a is None else a[piece] for a in arrays) for piece in bounds(size, pieces)
        ]
        self.split_pays = False
        self._trial: tuple[list[float], list[float]] | None = None
        self._next_trial = -float("inf")

    def run(self, fn: Callable, *args) -> None:
        """``fn(*args, *part)`` for every part, returning when all are done: split over threads
        or whole on this one, whichever the last trial measured faster."""
        if len(self.parts) == 1:
            fn(*args, *self.whole)
        elif self.always:
            self._run_split(fn, args)
        elif self._trial is None and _clock() < self._next_trial:
            if self.split_pays:
                self._run_split(fn, args)
            else:
                fn(*args, *self.whole)
        else:
            self._try(fn, args)

    def _try(self, fn: Callable, args: tuple) -> None:
        """One timed run of a trial, alternating whole and split; the last one picks."""
        if self._trial is None:
            self._trial = ([], [])
        whole, split = self._trial
        start = _clock()
        if len(split) < len(whole):
            self._run_split(fn, args)
            split.append(_clock() - start)
        else:
            fn(*args, *self.whole)
            whole.append(_clock() - start)
        if len(split) == TRIAL_RUNS:
            self.split_pays = statistics.median(split) < statistics.median(whole)
            self._trial = None
            self._next_trial = _clock() + TRIAL_EVERY_SECONDS

    def _run_split(self, fn: Callable, args: tuple) -> None:
        """This thread and the pool's take the next untaken part until none is left, so a pool
        thread that a busy host does not schedule in time costs nothing: this thread does its
        parts (a fork-join that waits for every thread would wait a whole time slice)."""
        parts = self.parts
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
