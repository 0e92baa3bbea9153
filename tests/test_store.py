"""The store against a real Redis: bit-exact arrays, appended histories, pages, write-once models,
and rq jobs that carry nothing but a job id, as JSON.
"""

import json
import zlib

import numpy as np
import pytest
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

import store
from service import create_app

TINY = np.finfo(np.float64).tiny
TRICKY = [0.0, -0.0, 0.1, 1 / 3, -2.5, 5e-324, TINY, TINY / 3, 1.7976931348623157e308]
TRICKY += [-1.7976931348623157e308, np.inf, -np.inf, np.nan, 1 + 2**-52, 2**53 + 1.0]

ARRAYS = [
    np.array(TRICKY, dtype=np.float64),
    np.array(TRICKY, dtype=np.float64).reshape(3, 5),
    np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4) / 7),
    (np.arange(20, dtype=np.float64).reshape(4, 5) / 3)[::2, 1::2],  # a strided view
    np.array([[1.5, -2.25]], dtype=np.float32),
    np.arange(6, dtype=np.int64).reshape(2, 3),
    np.empty((0, 3)),
]

JOB = {
    "network": {"layers": [{"units": 1, "activation": "sigmoid"}], "seed": 1},
    "training": {"loss": "mse", "optimizer": {"name": "sgd"}, "epochs": 3},
    "data": {"X": [[0.0], [1.0]], "y": [[0.0], [1.0]]},
}


def new_job(conn, epochs: int = 3) -> str:
    job_id = store.new_id()
    arrays = {"X": np.zeros((2, 1)), "y": np.ones((2, 1))}
    store.create_job(conn, job_id, {"training": {"epochs": epochs}}, arrays, epochs)
    return job_id


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_array_round_trip_is_bit_exact(redis_conn, array):
    redis_conn.set("array", store.array_to_bytes(array))
    back = store.array_from_bytes(redis_conn.get("array"))
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    assert back.tobytes() == np.ascontiguousarray(array).tobytes()


def test_object_arrays_are_refused():
    with pytest.raises(ValueError):
        store.array_to_bytes(np.array([{"a": 1}], dtype=object))


def test_a_json_valued_hash_decodes_as_the_record_it_was_written_from(redis_conn):
    record = {"id": "j", "epochs": 3, "error": None, "tags": ["a"], "progress": {"loss": 0.5}}
    redis_conn.hset("record", mapping={k: json.dumps(v) for k, v in record.items()})
    assert store.codecs.record_from_hash(redis_conn.hgetall("record")) == record
    assert store.codecs.record_from_hash(redis_conn.hgetall("no-such-record")) == {}
    fields = redis_conn.hmget("record", "epochs", "missing", "error")
    assert [store.codecs.json_or_none(v) for v in fields] == [3, None, None]


def test_job_arrays_round_trip(redis_conn):
    rng = np.random.default_rng(0)
    arrays = {name: rng.standard_normal((5, 3)) for name in ("X", "y", "X_val", "y_val")}
    spec = {"training": {"epochs": 1}}
    store.create_job(redis_conn, "j", spec, arrays, 1)
    back_spec, back = store.load_spec_and_arrays(redis_conn, "j")
    assert back_spec == spec
    assert back.keys() == arrays.keys()
    for name, array in arrays.items():
        assert back[name].tobytes() == array.tobytes()


def test_history_is_appended_across_flushes(redis_conn):
    job_id = new_job(redis_conn, epochs=10)
    rng = np.random.default_rng(1)
    losses, val_losses = rng.random(10).tolist(), rng.random(10).tolist()
    losses[3] = 5e-324  # survives as is: the columns are raw float64
    for start, stop in [(0, 4), (4, 5), (5, 5), (5, 10)]:
        chunk = {
            "epoch": list(range(start + 1, stop + 1)),
            "loss": losses[start:stop],
            "val_loss": val_losses[start:stop],
        }
        progress = {"epoch": stop, "epochs": 10, "loss": None, "val_loss": None}
        store.flush_progress(redis_conn, job_id, progress, chunk, start)

    history = store.load_history(redis_conn, job_id)
    assert history == {"epoch": list(range(1, 11)), "loss": losses, "val_loss": val_losses}
    assert all(type(epoch) is int for epoch in history["epoch"])
    assert store.get_job(redis_conn, job_id)["progress"]["epoch"] == 10


def test_a_flush_sent_again_stores_its_rows_once(redis_conn):
    """A flush whose reply was lost (Redis restarted after executing it) is sent again."""
    job_id = new_job(redis_conn, epochs=10)
    first = {"epoch": [1, 2], "loss": [0.5, 0.4]}
    for _ in range(2):
        store.flush_progress(redis_conn, job_id, {"epoch": 2, "epochs": 10}, first, 0)
    store.flush_progress(
        redis_conn, job_id, {"epoch": 3, "epochs": 10}, {"epoch": [3], "loss": [0.3]}, 2
    )
    assert store.load_history(redis_conn, job_id) == {"epoch": [1, 2, 3], "loss": [0.5, 0.4, 0.3]}


def test_replace_history_truncates(redis_conn):
    job_id = new_job(redis_conn, epochs=10)
    full = {"epoch": list(range(1, 9)), "loss": [1.0] * 8, "accuracy": [0.5] * 8}
    store.flush_progress(redis_conn, job_id, {"epoch": 8, "epochs": 10}, full, 0)

    store.replace_history(redis_conn, job_id, {"epoch": [1, 2, 3], "loss": [0.3, 0.2, 0.1]})

    assert store.load_history(redis_conn, job_id) == {"epoch": [1, 2, 3], "loss": [0.3, 0.2, 0.1]}
    store.flush_progress(
        redis_conn, job_id, {"epoch": 4, "epochs": 10}, {"epoch": [4], "loss": [0.05]}, 3
    )
    assert store.load_history(redis_conn, job_id) == {
        "epoch": [1, 2, 3, 4],
        "loss": [0.3, 0.2, 0.1, 0.05],
    }


def test_a_job_without_history_has_none(redis_conn):
    assert store.load_history(redis_conn, new_job(redis_conn)) == {}


def test_list_jobs_pages_newest_first(redis_conn):
    ids = [new_job(redis_conn) for _ in range(5)]
    newest_first = ids[::-1]

    pages, cursor = [], None
    while True:
        records, cursor = store.list_jobs(redis_conn, 2, cursor)
        pages.append([record["id"] for record in records])
        if cursor is None:
            break
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]

    records, cursor = store.list_jobs(redis_conn, 5)
    assert [record["id"] for record in records] == newest_first
    assert cursor is None
    assert store.list_jobs(redis_conn, 4, newest_first[3]) == (
        [store.get_job(redis_conn, ids[0])],
        None,
    )


def test_list_jobs_with_an_unknown_cursor_raises_key_error(redis_conn):
    new_job(redis_conn)
    with pytest.raises(KeyError):
        store.list_jobs(redis_conn, 10, "no-such-job")


def test_unknown_job_is_none(redis_conn):
    assert store.get_job(redis_conn, "no-such-job") is None


def test_models_are_write_once(redis_conn):
    store.save_model(redis_conn, "m", b"first bytes", {"id": "m", "final_loss": 0.5})
    store.save_model(redis_conn, "m", b"second bytes", {"id": "m", "final_loss": 0.1})

    assert store.load_model_bytes(redis_conn, "m") == b"first bytes"
    assert store.load_model_meta(redis_conn, "m") == {"id": "m", "final_loss": 0.5}
    assert store.load_model_bytes(redis_conn, "other") is None
    assert store.load_model_meta(redis_conn, "other") is None


def test_enqueued_rq_job_carries_only_the_job_id_as_json(redis_url, redis_conn):
    client = create_app({"REDIS_URL": redis_url, "TESTING": True}).test_client()
    response = client.post("/v1/jobs", json=JOB)
    assert response.status_code == 202
    job_id = response.get_json()["id"]

    queues = Queue.all(connection=redis_conn, serializer=JSONSerializer)
    rq_ids = [rq_id for queue in queues for rq_id in queue.job_ids]
    assert len(rq_ids) == 1
    rq_job = Job.fetch(rq_ids[0], connection=redis_conn, serializer=JSONSerializer)
    assert rq_job.func_name == "workers.tasks.train_job"
    assert rq_job.args == [job_id]
    assert rq_job.kwargs == {}

    # What rq stored is JSON (zlib-compressed by rq), never a pickle.
    data = zlib.decompress(redis_conn.hget(rq_job.key, "data"))
    assert not data.startswith(b"\x80")  # the pickle protocol marker
    assert json.loads(data) == ["workers.tasks.train_job", None, [job_id], {}]
    # The training data itself went to the store, as npy arrays and a JSON spec.
    X = store.array_from_bytes(redis_conn.get(store.array_key(job_id, "X")))
    assert X.tolist() == JOB["data"]["X"]
    assert json.loads(redis_conn.get(store.spec_key(job_id)))["training"]["epochs"] == 3


def test_history_pages_read_only_the_requested_entries(redis_conn):
    job_id = store.new_id()
    history = {"epoch": list(range(1, 11)), "loss": [1.0 / e for e in range(1, 11)]}
    store.replace_history(redis_conn, job_id, history)
    page = store.load_history(redis_conn, job_id, offset=3, limit=4)
    assert page == {"epoch": [4, 5, 6, 7], "loss": history["loss"][3:7]}
    assert store.load_history(redis_conn, job_id, offset=8) == {
        "epoch": [9, 10],
        "loss": history["loss"][8:],
    }
    assert store.load_history(redis_conn, job_id, offset=20, limit=5) == {"epoch": [], "loss": []}
    assert store.load_history(redis_conn, job_id, limit=0) == {"epoch": [], "loss": []}
    assert store.load_history(redis_conn, job_id) == history
