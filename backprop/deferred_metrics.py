"""Training metrics computed when the history is read, not every epoch.

On a tiny full-batch network (the article's XOR: 4 rows, 9 parameters) an epoch is a few
microseconds of arithmetic, and computing mae and r2 every epoch (four NumPy calls) took 14% of
training. Nobody reads them between flushes, so the trainer can keep each epoch's predictions in
a block instead (one copy) and compute the block's metrics in one vectorised pass when the
history is read or the block is full. ``EpochMetrics.epoch_results`` gives the same bits as the
per-epoch path.
"""

import numpy as np

from .metrics import EpochMetrics

# A block holds at most this many predictions (n_epochs * n_samples * n_outputs): deferring only
# pays where an epoch is tiny, and the block stays small (256 KiB in float64).
MAX_BLOCK_VALUES = 32_768
# Predictions of at most this many values per epoch are deferred; larger epochs spend their time
# in the arithmetic, not in the calls' overhead.
MAX_EPOCH_VALUES = 1_024


class DeferredMetrics:
    """A block of full-batch predictions whose metrics go into the history later.

    Args:
        metrics: the training set's ``EpochMetrics`` (its ``Y`` is the whole set).
        shape: (n_samples, n_outputs) of one epoch's predictions.
        dtype: their dtype.
    """

    def __init__(self, metrics: EpochMetrics, shape: tuple[int, int], dtype):
        self.metrics = metrics
        self.block = np.empty((max(1, MAX_BLOCK_VALUES // (shape[0] * shape[1])), *shape), dtype)
        self.count = 0

    @staticmethod
    def fits(shape: tuple[int, int]) -> bool:
        """Whether predictions of this shape are small enough to defer."""
        return shape[0] * shape[1] <= MAX_EPOCH_VALUES

    def add(self, P, history: dict) -> None:
        """Keep one epoch's predictions, settling ``history`` first when the block is full."""
        if self.count == len(self.block):
            self.settle(history)
        np.copyto(self.block[self.count], P)
        self.count += 1

    def drop_last(self) -> None:
        """Forget the last epoch added (it diverged, and is not in the history)."""
        self.count -= 1

    def settle(self, history: dict) -> None:
        """Append the metrics of the kept epochs to ``history``'s columns, in epoch order."""
        if not self.count:
            return
        results = self.metrics.epoch_results(self.block[: self.count])
        self.count = 0
        for name in results[0]:
            history[name].extend(result[name] for result in results)
