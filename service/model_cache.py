"""A per-process cache of models, bounded by bytes. Models never change once written."""

import threading
from collections import OrderedDict

from backprop import Model


class ModelCache:
    """Least-recently-used ``Model`` objects and their owners by id, up to ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Model, str, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, model_id: str) -> tuple[Model, str] | None:
        """``(model, owning tenant)`` or None."""
        with self._lock:
            item = self._items.get(model_id)
            if item is None:
                return None
            self._items.move_to_end(model_id)
            return item[0], item[1]

    def put(self, model_id: str, blob: bytes, owner: str) -> Model:
        model = Model.from_bytes(blob)
        with self._lock:
            if model_id not in self._items:
                self._items[model_id] = (model, owner, len(blob))
                self._bytes += len(blob)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, _, size) = self._items.popitem(last=False)
                self._bytes -= size
        return model

    def discard(self, model_id: str) -> None:
        with self._lock:
            item = self._items.pop(model_id, None)
            if item is not None:
                self._bytes -= item[2]
