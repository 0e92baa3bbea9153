"""Datasets: a JSON record and two npy arrays, keyed by tenant and content."""

import hashlib
import json
from typing import TypedDict

import numpy as np
import redis

from .codecs import array_from_bytes, json_or_none, now_iso, npy_parts
from .keys import dataset_array_key, dataset_key

DATASET_FORMAT = "backprop.dataset/1"


class DatasetRecord(TypedDict):
    """A dataset's JSON record (``keys.dataset_key``); X and y are stored beside it as npy."""

    id: str
    tenant: str
    rows: int
    columns: int  # inputs
    outputs: int  # targets
    dtype: str
    sha256: str
    created_at: str
    classes: list | None  # sorted distinct labels when y is one column of integers


def dataset_sha256(X: np.ndarray, y: np.ndarray) -> str:
    """The SHA-256 of a dataset's content: dtype, shapes, then X and y as little-endian bytes.

    X and y share one dtype; equal arrays give equal digests whatever their memory layout.
    """
    digest = hashlib.sha256()
    header = {"format": DATASET_FORMAT, "dtype": X.dtype.name, "X": X.shape, "y": y.shape}
    digest.update(json.dumps(header, sort_keys=True).encode() + b"\n")
    for array in (X, y):
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        digest.update(memoryview(little).cast("B"))
    return digest.hexdigest()


def dataset_id_for(tenant: str, sha256: str) -> str:
    """A dataset's id: the same content uploaded by the same tenant has the same id."""
    return hashlib.sha256(f"{tenant}\n{sha256}".encode()).hexdigest()[:32]


def create_dataset(
    conn: redis.Redis, tenant: str, X: np.ndarray, y: np.ndarray, classes: list | None
) -> tuple[DatasetRecord, bool]:
    """Store a dataset once: its arrays as npy and a JSON record, keyed by its content.

    Args:
        X: inputs of shape (rows, columns); y: targets of shape (rows, outputs), same dtype.
        classes: the sorted distinct labels when y is one column of integers, else None.

    Returns:
        ``(record, created)``; ``created`` is False when the tenant already has this dataset,
        and then nothing is written.
    """
    sha = dataset_sha256(X, y)
    dataset_id = dataset_id_for(tenant, sha)
    existing = get_dataset(conn, dataset_id)
    if existing is not None:
        return existing, False
    record: DatasetRecord = {
        "id": dataset_id,
        "tenant": tenant,
        "rows": int(X.shape[0]),
        "columns": int(X.shape[1]),
        "outputs": int(y.shape[1]),
        "dtype": X.dtype.name,
        "sha256": sha,
        "created_at": now_iso(),
        "classes": classes,
    }
    pipe = conn.pipeline(transaction=True)
    for name, array in (("X", X), ("y", y)):
        # Header, then the data appended from a view: no second copy of a large upload here.
        header, data = npy_parts(array)
        pipe.set(dataset_array_key(dataset_id, name), header)
        pipe.append(dataset_array_key(dataset_id, name), data)
    pipe.set(dataset_key(dataset_id), json.dumps(record), nx=True)
    if pipe.execute()[-1]:
        return record, True
    return get_dataset(conn, dataset_id) or record, False  # an identical upload won the race


def get_dataset(conn: redis.Redis, dataset_id: str) -> DatasetRecord | None:
    """The dataset's record, or None when there is no such dataset."""
    raw = conn.get(dataset_key(dataset_id))
    return json_or_none(raw)


def load_dataset_arrays(conn: redis.Redis, dataset_id: str) -> dict | None:
    """``{"X": ..., "y": ...}``, or None when the dataset has been deleted."""
    blobs = conn.mget([dataset_array_key(dataset_id, n) for n in ("X", "y")])
    if any(blob is None for blob in blobs):
        return None
    return {n: array_from_bytes(b) for n, b in zip(("X", "y"), blobs, strict=True)}


def delete_dataset(conn: redis.Redis, dataset_id: str) -> bool:
    """Remove a dataset; True when there was one. Jobs that still need it will fail."""
    keys = [dataset_key(dataset_id)] + [dataset_array_key(dataset_id, n) for n in ("X", "y")]
    return bool(conn.delete(*keys))
