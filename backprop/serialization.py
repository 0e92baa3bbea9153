"""Bytes for checkpoints and models: an uncompressed npz with one JSON member.

npz keeps arrays bit for bit and ``allow_pickle=False`` on load keeps it free of pickle.
"""

import io
import json

import numpy as np

_META = "__meta__"


def pack(meta: dict, arrays: dict) -> bytes:
    """Serialise a JSON-able ``meta`` and named arrays."""
    buf = io.BytesIO()
    encoded = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez(buf, **{_META: encoded}, **arrays)
    return buf.getvalue()


def unpack(blob: bytes) -> tuple[dict, dict]:
    """Inverse of ``pack``: ``(meta, arrays)``."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays.pop(_META).tobytes().decode())
    return meta, arrays
