"""How values are written: arrays as npy bytes (never pickled), history columns as raw float64,
ids as hex, times as ISO 8601."""

import io
import json
import math
import uuid
from datetime import UTC, datetime

import numpy as np

ROW_BYTES = 8  # a history column holds one little-endian float64 per epoch


def history_values(column: str, blob: bytes | None) -> list:
    """The values of a stored history column (or a slice of it); epochs come back as ints."""
    values = np.frombuffer(blob or b"", "<f8")
    return values.astype(int).tolist() if column == "epoch" else values.tolist()


def record_from_hash(raw: dict[bytes, bytes]) -> dict:
    """A record kept as a Redis hash of JSON values (a job, a sweep, a delivery), from
    HGETALL's reply; ``{}`` when there is no such hash."""
    return {key.decode(): json.loads(value) for key, value in raw.items()}


def json_or_none(raw: bytes | None):
    """A stored JSON value (a GET's or one of an HMGET's replies); None when it is missing."""
    return None if raw is None else json.loads(raw)


def new_id() -> str:
    return uuid.uuid4().hex


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_timestamp(seconds: float) -> str:
    """A Unix time as ``now_iso`` writes times (to the millisecond, UTC)."""
    when = datetime.fromtimestamp(seconds, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finite(obj):
    """``obj`` with every non-finite float, at any depth of dicts and lists, as None: JSON has
    no words for NaN and Infinity, which ``json.dumps`` would write."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(value) for value in obj]
    return obj


def array_to_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def array_from_bytes(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def npy_parts(array: np.ndarray) -> tuple[bytes, memoryview]:
    """``array_to_bytes(array)`` as its header and a view of the data, which is not copied."""
    array = np.ascontiguousarray(array)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    return buf.getvalue(), memoryview(array).cast("B")
