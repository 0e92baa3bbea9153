"""A per-process cache of models, bounded by bytes. Models never change once written."""

import threading
import time
from collections import OrderedDict

from backprop import Model


class ModelCache:
    """Least-recently-used ``Model`` objects and their owners by id, up to ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        # id -> [model, owner, size in bytes, when its existence was last confirmed]
        self._items: OrderedDict[str, list] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, model_id: str) -> tuple[Model, str, float] | None:
        """``(model, owning tenant, seconds since its existence was confirmed)`` or None."""
        with self._lock:
            item = self._items.get(model_id)
            if item is None:
                return None
            self._items.move_to_end(model_id)
            return item[0], item[1], time.monotonic() - item[3]

    def confirm(self, model_id: str) -> None:
        """Record that the model still exists in the store."""
        with self._lock:
            item = self._items.get(model_id)
            if item is not None:
                item[3] = time.monotonic()

    def put(self, model_id: str, blob: bytes, owner: str) -> Model:
        model = Model.from_bytes(blob)
        with self._lock:
            if model_id not in self._items:
                self._items[model_id] = [model, owner, len(blob), time.monotonic()]
                self._bytes += len(blob)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted[2]
        return model

    def discard(self, model_id: str) -> None:
        with self._lock:
            item = self._items.pop(model_id, None)
            if item is not None:
                self._bytes -= item[2]
