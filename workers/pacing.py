"""How often the engine callback reads the clock.

Everything the callback does but honour a stop request is paced by the clock (flushes,
checkpoints, the runtime cap), and on a tiny network an epoch takes microseconds: reading the
clock after each of the article's 10,000 epochs was a few percent of its training time. The
pacer reads it every ``stride`` epochs instead, the stride sized from the epochs' measured
speed so that reads still come about every ``interval`` seconds.
"""

import time

# Reads about this often: far finer than FLUSH_SECONDS, and than any runtime cap.
INTERVAL_SECONDS = 0.005


class ClockPacer:
    """Says at which epoch the clock is next worth reading.

    Args:
        epoch: the epoch training starts from.
        interval: seconds between reads that the stride aims at.
    """

    def __init__(self, epoch: int, interval: float = INTERVAL_SECONDS):
        self.interval = interval
        self.next_epoch = epoch  # the first call reads the clock
        self.stride = 1
        self._epoch = epoch
        self._time = time.monotonic()

    def read(self, epoch: int) -> float:
        """The clock now, at ``epoch``; sets ``next_epoch``.

        The stride at most doubles from one read to the next, so a job whose epochs slow down
        (or whose first ones were fast) overshoots the interval by a bounded amount.
        """
        now = time.monotonic()
        done = epoch - self._epoch
        if done > 0:
            per_epoch = (now - self._time) / done
            fits = int(self.interval / per_epoch) if per_epoch > 0 else 2 * self.stride
            self.stride = max(1, min(2 * self.stride, fits))
        self._epoch, self._time = epoch, now
        self.next_epoch = epoch + self.stride
        return now
