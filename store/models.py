"""Trained models: the engine's npz bytes and a JSON description; never rewritten."""

import json
from typing import TypedDict

import redis

from .codecs import json_or_none
from .keys import job_key, model_key, model_meta_key

# How many ancestors a model's description lists (parent first): a chain of fine-tunings can
# grow without bound, its description must not.
LINEAGE_DEPTH = 20


class ModelMeta(TypedDict):
    """A model's JSON description (``keys.model_meta_key``); its id is its job's id."""

    id: str
    job_id: str
    tenant: str
    created_at: str
    spec: dict  # the job's normalised spec, without its initial weights
    n_inputs: int
    n_outputs: int
    n_params: int
    final_loss: float | None
    final_metrics: dict[str, float]
    epochs_run: int
    stopped_early: bool
    best_epoch: int | None
    classes: list | None  # targets "classes": the label of each output unit
    parent_id: str | None  # the model it was warm-started from (initial_model_id)
    lineage: list[str]  # parent_id, its parent, ...: at most LINEAGE_DEPTH ids, nearest first


def save_model(conn, model_id: str, blob: bytes, meta: ModelMeta) -> None:
    """Store a model's bytes and its JSON description; models are never rewritten."""
    pipe = conn.pipeline(transaction=True)
    pipe.set(model_key(model_id), blob, nx=True)
    pipe.set(model_meta_key(model_id), json.dumps(meta), nx=True)
    pipe.execute()


def load_model_meta(conn: redis.Redis, model_id: str) -> ModelMeta | None:
    raw = conn.get(model_meta_key(model_id))
    return json_or_none(raw)


def load_model_bytes(conn: redis.Redis, model_id: str) -> bytes | None:
    return conn.get(model_key(model_id))


def model_exists(conn: redis.Redis, model_id: str) -> bool:
    return bool(conn.exists(model_key(model_id)))


def delete_model(conn: redis.Redis, model_id: str) -> bool:
    """Remove a model, and its id from the job that made it; True when there was one."""
    pipe = conn.pipeline(transaction=True)
    queue_delete(pipe, model_id)
    deleted = pipe.execute()[0]
    return bool(deleted)


def queue_delete(pipe, model_id: str) -> None:
    """Add the commands that delete a model to a transaction; the first replies how many
    keys it removed (``store.aliases`` guards it)."""
    pipe.delete(model_key(model_id), model_meta_key(model_id))
    # A model's id is its job's id.
    pipe.hset(job_key(model_id), mapping={"model_id": "null", "model_deleted": "true"})


def lineage(conn: redis.Redis, parent_id: str | None) -> list[str]:
    """The ancestors of a model warm-started from ``parent_id``, nearest first, at most
    ``LINEAGE_DEPTH``; one read, since each model records its own."""
    if parent_id is None:
        return []
    parent = load_model_meta(conn, parent_id) or {}
    return [parent_id, *parent.get("lineage", [])][:LINEAGE_DEPTH]
