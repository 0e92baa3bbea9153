"""Datasets as resources: uploads in each format, content-addressed ids, errors that name the
line and column, tenancy, jobs that train from a dataset id, and the CSV parser's memory.

The Flask test client drives the real app against the real Redis of the session; the end-to-end
test runs gunicorn and an rq worker subprocess.
"""

import io
import time

import numpy as np
import pytest
import requests

import store
from bench.data import run_one
from service import create_app
from service.dataset_formats import DatasetError, read_csv, read_csv_exact
from tests.support.checks import assert_error, stored_keys
from tests.support.jobs import GOOD_JOB, SOFTMAX_JOB, edited
from workers.tasks import train_job

# Five rows, two inputs on very different scales, two targets; every number exact in float32.
X5 = np.array([[1.0, 1000.0], [2.0, 3000.0], [3.0, 2000.0], [4.0, 5000.0], [5.0, 4000.0]])
Y5 = np.array([[0.5, 1.0], [0.25, 0.0], [0.75, 1.0], [1.0, 0.0], [0.0, 1.0]])
CSV5 = "x1,y1,x2,y2\n" + "".join(
    f"{x[0]},{y[0]},{x[1]},{y[1]}\n" for x, y in zip(X5, Y5, strict=True)
)


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def as_csv(text, **query) -> dict:
    """Test-client keyword arguments that upload ``text`` as CSV with ``query``."""
    return {"data": text, "content_type": "text/csv", "query_string": query}


def as_binary(blob: bytes, **query) -> dict:
    return {"data": blob, "content_type": "application/octet-stream", "query_string": query}


def as_json(body, **query) -> dict:
    return {"json": body, "query_string": query}


# (id, request keyword arguments, expected X, expected y)
UPLOADS = [
    ("json", as_json({"X": X5.tolist(), "y": Y5.tolist()}), X5, Y5),
    ("json-flat-y", as_json({"X": X5.tolist(), "y": Y5[:, 0].tolist()}), X5, Y5[:, :1]),
    # x1, x2, y2 in the header's order
    ("csv-one-target", as_csv(CSV5, target="y1"), np.column_stack([X5, Y5[:, 1]]), Y5[:, :1]),
    ("csv-two-targets-comma", as_csv(CSV5, target="y1,y2"), X5, Y5),
    ("csv-two-targets-repeated", as_csv(CSV5, target=["y1", "y2"]), X5, Y5),
    ("npz", as_binary(npz_bytes(X=X5, y=Y5)), X5, Y5),
    (
        "npz-int-arrays-flat-y",
        as_binary(npz_bytes(X=X5.astype(np.int32), y=np.arange(5))),
        X5,
        np.arange(5.0).reshape(-1, 1),
    ),
    (
        "npy-target",
        as_binary(
            npy_bytes(np.column_stack([X5[:, 0], Y5[:, 0], X5[:, 1], Y5[:, 1]])), target="1,3"
        ),
        X5,
        Y5,
    ),
]

UPLOADS_BY_NAME = {name: kwargs for name, kwargs, *_ in UPLOADS}


def upload(client, **kwargs):
    kwargs.setdefault("query_string", {})
    return client.post("/v1/datasets", **kwargs)


def uploaded(client, **kwargs) -> dict:
    response = upload(client, **kwargs)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# -- uploads ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    ("kwargs", "X", "y"), [u[1:] for u in UPLOADS], ids=[u[0] for u in UPLOADS]
)
def test_each_format_is_stored_once_and_counted(client, redis_conn, kwargs, X, y, dtype):
    kwargs = {**kwargs, "query_string": {**kwargs.get("query_string", {}), "dtype": dtype}}
    response = upload(client, **kwargs)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/datasets/{body['id']}"
    X, y = X.astype(dtype), y.astype(dtype)
    assert body["rows"] == 5
    assert (body["columns"], body["outputs"], body["dtype"]) == (X.shape[1], y.shape[1], dtype)
    assert body["sha256"] == store.dataset_sha256(X, y)
    assert set(body) == {"id", "rows", "columns", "outputs", "dtype", "sha256", "created_at"}
    assert client.get(f"/v1/datasets/{body['id']}").get_json() == body

    arrays = store.load_dataset_arrays(redis_conn, body["id"])
    assert arrays["X"].dtype == arrays["y"].dtype == np.dtype(dtype)
    assert arrays["X"].tobytes() == X.tobytes() and arrays["y"].tobytes() == y.tobytes()

    again = upload(client, **kwargs)
    assert again.status_code == 200
    assert again.get_json() == body


def test_the_same_numbers_in_any_format_are_one_dataset(client, redis_conn):
    first = uploaded(client, **UPLOADS_BY_NAME["json"])["id"]
    for name in ("csv-two-targets-comma", "npz", "npy-target"):
        response = upload(client, **UPLOADS_BY_NAME[name])
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["id"] == first
    float32 = upload(client, **as_json({"X": X5.tolist(), "y": Y5.tolist()}, dtype="float32"))
    assert float32.status_code == 201
    assert float32.get_json()["id"] != first
    assert len(redis_conn.keys("bp:dataset:*:array:X")) == 2


def test_delete_removes_the_dataset(client, redis_conn):
    dataset_id = uploaded(client, json={"X": X5.tolist(), "y": Y5.tolist()})["id"]
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert_error(client.get(f"/v1/datasets/{dataset_id}"), 404)
    assert_error(client.delete(f"/v1/datasets/{dataset_id}"), 404)
    assert stored_keys(redis_conn) == []


# -- errors -----------------------------------------------------------------------------

CSV_ERRORS = [
    # (id, CSV text, target, words the message must contain)
    ("non-numeric", "a,b,y\n1,2,3\n4,abc,6\n", "y", ["line 3", "column 'b'", "'abc'"]),
    ("empty-cell", "a,b,y\n1,2,3\n4,,6\n7,8,9\n", "y", ["line 3", "column 'b'", "empty"]),
    ("infinite", "a,b,y\n1,2,3\n4,5,inf\n", "y", ["line 3", "column 'y'", "finite"]),
    ("nan", "a,b,y\nnan,2,3\n", "y", ["line 2", "column 'a'", "finite"]),
    ("short-row", "a,b,y\n1,2,3\n4,5\n", "y", ["line 3", "column 'y'", "missing"]),
    ("long-row", "a,b,y\n1,2,3\n4,5,6,7\n", "y", ["line 3", "column 4", "extra"]),
    ("text-after-quote", 'a,b,y\n1,2,3\n4,"5"x,6\n', "y", ["line 3", "column 'b'", "malformed"]),
    ("unclosed-quote", 'a,b,y\n1,2,3\n4,5,"6\n7,8,9\n', "y", ["line 4", "column 'y'", "malformed"]),
    ("quoted-newline", 'a,b,y\n1,"2\n2",3\n', "y", ["line 3", "column 'b'", "not a number"]),
    ("not-utf8", b"a,b,y\n1,2,3\n\xff,2,3\n", "y", ["line 3", "UTF-8"]),
    ("bad-header-quote", 'a,"b"c,y\n1,2,3\n', "y", ["line 1", "column 2", "malformed"]),
    ("long-line", "a,y\n" + "1" * (1 << 20) + ",2\n", "y", ["line 2", "longer"]),
    ("empty", "", "y", ["empty"]),
    ("header-only", "a,b,y\n", "y", ["no rows"]),
    ("duplicate-name", "a,a,y\n1,2,3\n", "y", ["line 1", "column 'a'", "twice"]),
    ("blank-name", "a,,y\n1,2,3\n", "y", ["line 1", "column 2"]),
]
# Row 1000 of a long file, past the first parsed block: the line number is still exact.
LONG = "a,b,y\n" + "1,2,3\n" * 4999 + "1,x,3\n"
CSV_ERRORS.append(("far-down", LONG, "y", ["line 5001", "column 'b'", "'x'"]))
CSV_ERRORS.append(
    ("far-down-not-utf8", LONG.encode()[:-6] + b"1,\xff,3\n", "y", ["line 5001", "UTF-8"])
)


@pytest.mark.parametrize(
    ("text", "target", "words"), [c[1:] for c in CSV_ERRORS], ids=[c[0] for c in CSV_ERRORS]
)
def test_bad_csv_is_422_naming_line_and_column(client, redis_conn, text, target, words):
    response = upload(client, **as_csv(text, target=target))
    body = assert_error(response, 422, "body")
    message = body["errors"]["body"][0]
    assert all(word in message for word in words), message
    assert stored_keys(redis_conn) == []


def test_csv_with_bom_crlf_quotes_and_blank_lines(client, redis_conn):
    text = '\ufeffa,"b",y\r\n1," 2 ",3\r\n\r\n4,5,6\r\n'
    response = upload(
        client, data=text.encode(), content_type="text/csv", query_string={"target": "y"}
    )
    assert response.status_code == 201, response.get_json()
    arrays = store.load_dataset_arrays(redis_conn, response.get_json()["id"])
    assert arrays["X"].tolist() == [[1, 2], [4, 5]] and arrays["y"].tolist() == [[3], [6]]


def test_float32_overflow_names_the_cell(client):
    text = "a,y\n1,2\n1e39,3\n"
    response = upload(
        client, data=text, content_type="text/csv", query_string={"target": "y", "dtype": "float32"}
    )
    message = assert_error(response, 422, "body")["errors"]["body"][0]
    assert "line 3, column 'a'" in message and "float32" in message
    ok = upload(client, **as_csv(text, target="y"))
    assert ok.status_code == 201


OBJECTS = np.array([{"a": 1}, None], dtype=object)
BAD_UPLOADS = [
    # (id, request keyword arguments, field named)
    ("csv-no-target", as_csv(CSV5), "target"),
    ("csv-unknown-target", as_csv(CSV5, target="z"), "target"),
    ("csv-all-targets", as_csv("a,b\n1,2\n", target="a,b"), "target"),
    ("csv-bad-dtype", as_csv(CSV5, target="y1", dtype="int8"), "dtype"),
    ("json-ragged", as_json({"X": [[1, 2], [3]], "y": [1, 2]}), "X"),
    ("json-rows", as_json({"X": [[1, 2], [3, 4]], "y": [1, 2, 3]}), "y"),
    ("json-strings", as_json({"X": [["1", "2"]], "y": [1]}), "X"),
    ("json-missing-y", as_json({"X": [[1, 2]]}), "y"),
    ("json-target", as_json({"X": [[1]], "y": [1]}, target="y"), "target"),
    ("json-float32-overflow", as_json({"X": [[1e39]], "y": [1]}, dtype="float32"), "X"),
    ("npy-no-target", as_binary(npy_bytes(X5)), "target"),
    ("npy-bad-index", as_binary(npy_bytes(X5), target="2"), "target"),
    ("npy-name-not-index", as_binary(npy_bytes(X5), target="x2"), "target"),
    ("npy-1d", as_binary(npy_bytes(np.arange(5.0)), target="0"), "body"),
    ("npy-objects", as_binary(npy_bytes(OBJECTS), target="0"), "body"),
    ("npy-strings", as_binary(npy_bytes(np.array([["a", "b"]])), target="0"), "body"),
    ("npy-nan", as_binary(npy_bytes(np.array([[1.0, np.nan]])), target="0"), "body"),
    ("npy-truncated", as_binary(npy_bytes(X5)[:-8], target="0"), "body"),
    ("npz-extra-array", as_binary(npz_bytes(X=X5, y=Y5, z=Y5)), "body"),
    ("npz-no-y", as_binary(npz_bytes(X=X5)), "body"),
    ("npz-rows", as_binary(npz_bytes(X=X5, y=Y5[:3])), "body"),
    ("npz-target", as_binary(npz_bytes(X=X5, y=Y5), target="0"), "target"),
    ("npz-objects", as_binary(npz_bytes(X=OBJECTS, y=Y5)), "body"),
    ("npz-truncated", as_binary(npz_bytes(X=X5, y=Y5)[:200]), "body"),
    ("not-numpy", as_binary(b"PNG\x00\x01garbage"), "body"),
]


@pytest.mark.parametrize(
    ("kwargs", "field"), [b[1:] for b in BAD_UPLOADS], ids=[b[0] for b in BAD_UPLOADS]
)
def test_bad_upload_is_422_naming_the_field(client, redis_conn, kwargs, field):
    assert_error(upload(client, **kwargs), 422, field)
    assert stored_keys(redis_conn) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": CSV5, "content_type": "text/plain"},
        {"data": "<x/>", "content_type": "application/xml"},
        {
            "data": {"file": (io.BytesIO(b"a,b\n1,2\n"), "d.csv")},
            "content_type": "multipart/form-data",
        },
        {"data": CSV5},
    ],
    ids=["text-plain", "xml", "multipart", "no-content-type"],
)
def test_other_content_types_are_415(client, redis_conn, kwargs):
    assert_error(upload(client, query_string={"target": "y1"}, **kwargs), 415)
    assert stored_keys(redis_conn) == []


@pytest.mark.parametrize("content_type", ["text/csv", "application/octet-stream"])
def test_uploads_over_the_size_limit_are_413(redis_url, redis_conn, content_type):
    app = create_app({"REDIS_URL": redis_url, "TESTING": True, "MAX_DATASET_BYTES": 4096})
    client = app.test_client()
    rows = np.arange(2000.0).reshape(1000, 2)
    if content_type == "text/csv":
        body = "a,y\n" + "".join(f"{a},{b}\n" for a, b in rows)
    else:
        body = npy_bytes(rows)
    response = upload(
        client,
        data=body,
        content_type=content_type,
        query_string={"target": "y" if content_type == "text/csv" else "1"},
    )
    assert_error(response, 413)
    # Short text, many values: the arrays, not only the body, are held to the limit.
    dense = "a,y\n" + "1,2\n" * 1000
    assert len(dense) < 4096
    response = upload(client, **as_csv(dense, target="y"))
    assert_error(response, 413)
    assert stored_keys(redis_conn) == []


def test_a_header_wider_than_max_columns_is_422_naming_the_header(client, redis_conn):
    """100,000 columns: refused at the header (the default cap is 10,000), not parsed, and
    the duplicate-name check on the way is linear."""
    names = [f"c{i}" for i in range(100_000)] + ["y"]
    text = ",".join(names) + "\n" + ",".join("0" * len(names)) + "\n"
    body = assert_error(upload(client, **as_csv(text, target="y")), 422, "body")
    assert "line 1: the header has 100,001 columns; at most 10,000" in body["errors"]["body"][0]
    assert stored_keys(redis_conn) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (as_csv(CSV5, target="y1"), "body"),
        (as_binary(npy_bytes(np.column_stack([X5, Y5])), target="3"), "body"),
        (as_binary(npz_bytes(X=X5, y=Y5)), "body"),
        (as_json({"X": X5.tolist(), "y": Y5.tolist()}), "X"),
    ],
    ids=["csv", "npy", "npz", "json"],
)
def test_every_format_keeps_to_max_columns(redis_url, redis_conn, kwargs, field):
    client = create_app({"REDIS_URL": redis_url, "TESTING": True, "MAX_COLUMNS": 3}).test_client()
    body = assert_error(upload(client, **kwargs), 422, field)
    assert "4 columns; at most 3" in body["errors"][field][0]
    assert stored_keys(redis_conn) == []


@pytest.mark.parametrize("text", ["[" * 100_000, '{"X": ' * 100_000])
def test_json_nested_past_the_recursion_limit_is_400(client, redis_conn, text):
    response = client.post("/v1/datasets", data=text, content_type="application/json")
    assert_error(response, 400, "body")
    assert stored_keys(redis_conn) == []


# -- jobs from datasets -----------------------------------------------------------------

XOR_JOB = GOOD_JOB


def dataset_job(dataset_id: str, *edits) -> dict:
    """GOOD_JOB with ``edits`` (see ``edited``), training on a dataset instead of its data."""
    job = edited(*edits)
    del job["data"]
    job["dataset_id"] = dataset_id
    return job


def xor_dataset(client) -> str:
    return uploaded(client, json=XOR_JOB["data"])["id"]


def test_a_job_stores_the_dataset_id_and_no_copy(client, redis_conn):
    dataset_id = xor_dataset(client)
    response = client.post("/v1/jobs", json=dataset_job(dataset_id))
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["dataset_id"] == dataset_id
    assert not redis_conn.exists(store.array_key(job["id"], "X"))
    assert not redis_conn.exists(store.array_key(job["id"], "y"))
    assert client.get(f"/v1/jobs/{job['id']}").get_json()["dataset_id"] == dataset_id
    inline = client.post("/v1/jobs", json=GOOD_JOB).get_json()
    assert inline["dataset_id"] is None


@pytest.mark.parametrize(
    ("kwargs", "X", "y"), [u[1:] for u in UPLOADS], ids=[u[0] for u in UPLOADS]
)
def test_a_job_trains_on_each_format_as_on_inline_data(client, kwargs, X, y):
    """The worker reads the dataset's arrays: the model is the inline job's, bit for bit."""
    dataset_id = uploaded(client, **kwargs)["id"]
    output = {"units": y.shape[1], "activation": "linear"}
    edits = [("network.layers.1", output), ("training.loss", "mse")]
    inline = edited(*edits, ("data", {"X": X.tolist(), "y": y.tolist()}))
    job_ids = [
        client.post("/v1/jobs", json=job).get_json()["id"]
        for job in (inline, dataset_job(dataset_id, *edits))
    ]
    for job_id in job_ids:
        assert train_job(job_id)["model_id"] == job_id
    models = [client.get(f"/v1/models/{i}").get_json() for i in job_ids]
    assert models[1]["n_inputs"] == X.shape[1] and models[1]["n_outputs"] == y.shape[1]
    weights = [client.get(f"/v1/models/{i}/weights").get_json() for i in job_ids]
    assert weights[0] == weights[1]
    assert models[0]["final_loss"] == models[1]["final_loss"]


def test_a_deleted_dataset_fails_its_queued_jobs(client):
    dataset_id = xor_dataset(client)
    job_id = client.post("/v1/jobs", json=dataset_job(dataset_id)).get_json()["id"]
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert train_job(job_id) == {"status": "failed", "error": "dataset_missing"}
    record = client.get(f"/v1/jobs/{job_id}").get_json()
    assert record["status"] == "failed"
    assert record["error"]["code"] == "dataset_missing"
    assert dataset_id in record["error"]["message"]


CLASSES_CSV = "a,label,b\n" + "".join(
    f"{a},{label},{b}\n"
    for a, label, b in [(0, 7, 100), (1, 7, 110), (10, -3, 900), (11, -3, 950), (20, 12, 400)]
)


def without_data() -> dict:
    return {key: value for key, value in XOR_JOB.items() if key != "data"}


def bad_dataset_jobs() -> list:
    """(id, dataset uploaded first, job made from its id, field named)."""
    xor, classes, two_targets = "xor", "classes", "two-targets"
    return [
        ("both", xor, lambda d: {**XOR_JOB, "dataset_id": d}, "dataset_id"),
        ("neither", xor, lambda d: without_data(), "data"),
        ("unknown", xor, lambda d: dataset_job("f" * 32), "dataset_id"),
        ("y-width", two_targets, lambda d: dataset_job(d), "dataset_id"),
        (
            "classes-units",
            classes,
            lambda d: dataset_job(
                d,
                ("network.layers.1", {"units": 2, "activation": "softmax"}),
                ("training.loss", "categorical_crossentropy"),
                ("targets", "classes"),
            ),
            "network.layers.1.units",
        ),
        (
            "classes-of-real-numbers",
            two_targets,
            lambda d: dataset_job(
                d,
                ("network.layers.1", {"units": 2, "activation": "softmax"}),
                ("training.loss", "categorical_crossentropy"),
                ("targets", "classes"),
            ),
            "dataset_id",
        ),
        (
            "validation-columns",
            xor,
            lambda d: dataset_job(d, ("training.validation", {"X": [[0]], "y": [[0]]})),
            "training.validation.X",
        ),
        (
            "initial-weights",
            xor,
            lambda d: dataset_job(
                d,
                (
                    "initial_weights",
                    [{"W": [[0, 0]] * 3, "b": [0, 0]}, {"W": [[0], [0]], "b": [0]}],
                ),
            ),
            "initial_weights.0.W",
        ),
        (
            "bad-preprocessing",
            xor,
            lambda d: dataset_job(d, ("preprocessing", {"standardize": "yes"})),
            "preprocessing.standardize",
        ),
        ("bad-targets", xor, lambda d: dataset_job(d, ("targets", "labels")), "targets"),
    ]


@pytest.mark.parametrize(
    ("source", "make", "path"),
    [c[1:] for c in bad_dataset_jobs()],
    ids=[c[0] for c in bad_dataset_jobs()],
)
def test_bad_dataset_jobs_are_422_naming_the_field(client, redis_conn, source, make, path):
    if source == "xor":
        dataset_id = xor_dataset(client)
    elif source == "classes":
        dataset_id = uploaded(
            client, data=CLASSES_CSV, content_type="text/csv", query_string={"target": "label"}
        )["id"]
    else:
        dataset_id = uploaded(client, json={"X": X5.tolist(), "y": Y5.tolist()})["id"]
    keys = stored_keys(redis_conn)
    assert_error(client.post("/v1/jobs", json=make(dataset_id)), 422, path)
    assert stored_keys(redis_conn) == keys


def test_inline_class_labels_train_and_predict_as_given(client):
    """targets "classes" with inline data: labels in, the same labels out of /v1 predict."""
    X = [[0, 100], [1, 110], [10, 900], [11, 950], [20, 400]]
    job = edited(
        ("network.layers.1", {"units": 3, "activation": "softmax"}),
        ("training.loss", "categorical_crossentropy"),
        ("training.optimizer", {"name": "adam", "learning_rate": 0.05}),
        ("training.epochs", 300),
        ("data", {"X": X, "y": [7, 7, -3, -3, 12]}),
        ("preprocessing", {"standardize": True}),
        ("targets", "classes"),
        ("network.layers.0.units", 8),
    )
    wrong = edited(  # GOOD_JOB's y has two classes
        ("network.layers.1", {"units": 4, "activation": "softmax"}),
        ("training.loss", "categorical_crossentropy"),
        ("targets", "classes"),
    )
    assert_error(client.post("/v1/jobs", json=wrong), 422, "network.layers.1.units")
    job_id = client.post("/v1/jobs", json=job).get_json()["id"]
    assert train_job(job_id)["model_id"] == job_id
    response = client.post(f"/v1/models/{job_id}/predict", json={"inputs": X})
    assert response.get_json()["labels"] == [7, 7, -3, -3, 12]


# -- tenancy ----------------------------------------------------------------------------

KEYS = {"alice": "k1", "bob": "k2"}


def test_datasets_belong_to_their_tenant(redis_url, redis_conn, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    env = {"API_KEYS": ",".join(f"{t}:{k}" for t, k in KEYS.items())}
    client = create_app({"REDIS_URL": redis_url, "TESTING": True, "AUTH_ENV": env}).test_client()
    alice, bob = ({"Authorization": f"Bearer {KEYS[t]}"} for t in ("alice", "bob"))
    body = {"X": X5.tolist(), "y": Y5[:, :1].tolist()}
    mine = uploaded(client, json=body, headers=alice)["id"]
    assert upload(client, json=body).status_code == 401
    assert_error(client.get(f"/v1/datasets/{mine}", headers=bob), 404)
    assert_error(client.delete(f"/v1/datasets/{mine}", headers=bob), 404)
    job = dataset_job(mine, ("network.layers.0.units", 2))
    assert_error(client.post("/v1/jobs", json=job, headers=bob), 422, "dataset_id")
    assert client.post("/v1/jobs", json=job, headers=alice).status_code == 202
    theirs = uploaded(client, json=body, headers=bob)["id"]  # the same content: bob's own copy
    assert theirs != mine
    assert client.get(f"/v1/datasets/{mine}", headers=alice).status_code == 200


# -- end to end -------------------------------------------------------------------------

JOB_DEADLINE = 60  # seconds a test waits for a job (not a timing assertion)


def test_train_from_an_uploaded_csv_and_predict_original_labels(
    module_live_server, redis_url, start_worker
):
    start_worker()
    base = module_live_server
    with requests.Session() as http:
        http.trust_env = False
        response = http.post(
            f"{base}/v1/datasets",
            params={"target": "label"},
            data=CLASSES_CSV.encode(),
            headers={"Content-Type": "text/csv"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        dataset = response.json()
        assert (dataset["rows"], dataset["columns"], dataset["outputs"]) == (5, 2, 1)
        job = {
            "network": SOFTMAX_JOB["network"],
            "training": SOFTMAX_JOB["training"],
            "dataset_id": dataset["id"],
            "preprocessing": {"standardize": True},
            "targets": "classes",
        }
        response = http.post(f"{base}/v1/jobs", json=job, timeout=10)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        deadline = time.monotonic() + JOB_DEADLINE
        while (record := http.get(f"{base}/v1/jobs/{job_id}", timeout=10).json())["status"] in (
            "queued",
            "started",
        ):
            assert time.monotonic() < deadline, record
            time.sleep(0.05)
        assert record["status"] == "finished", record

        inputs = [[0, 100], [1, 110], [10, 900], [11, 950], [20, 400]]
        response = http.post(
            f"{base}/v1/models/{job_id}/predict", json={"inputs": inputs}, timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json()["labels"] == [7, 7, -3, -3, 12]
        model = http.get(f"{base}/v1/models/{job_id}", timeout=10).json()
        assert model["classes"] == [-3, 7, 12]
        assert model["spec"]["preprocessing"] == {"standardize": True}


# -- the CSV parser's memory ------------------------------------------------------------

MEMORY_ROWS, MEMORY_COLUMNS = 200_000, 32


@pytest.mark.slow  # 200,000 rows parsed in a process of its own
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_csv_parse_peak_memory_is_at_most_one_and_a_half_times_the_arrays(tmp_path, dtype):
    """The resident set's growth during the parse, sampled from another thread, after a
    warm-up parse (as a server process has done before its second upload): arrays held by
    pyarrow's allocator count too, which tracemalloc would not see."""
    path = tmp_path / "big.csv"
    rng = np.random.default_rng(0)
    with path.open("w") as out:
        out.write(",".join([f"x{i}" for i in range(MEMORY_COLUMNS)] + ["y"]) + "\n")
        for _ in range(MEMORY_ROWS // 20_000):
            block = rng.standard_normal((20_000, MEMORY_COLUMNS + 1)).astype(np.float32)
            np.savetxt(out, block, delimiter=",", fmt="%.7g")
    measured = run_one("ours", path, dtype)
    print(f"csv parse, {dtype}: peak {measured['peak_ratio']:.2f}x the arrays")
    assert measured["peak_ratio"] <= 1.5, measured


# Cells on which pyarrow and Python's float() may disagree: the fast path must give what the
# exact parser gives, or leave the file to it.
TRICKY_CELLS = [
    "1",
    "-2.5",
    "+3",
    ".5",
    "5.",
    "1e3",
    "1E-3",
    " 2 ",
    "1_000",
    "0x10",
    "infinity",
    "-inf",
    "NaN",
    "nan",
    "",
    "NA",
    "null",
    "1e400",
    "1e39",
    '"4"',
    '" 4"',
    "١",
    "1,5",
    "true",
    "4e",
    "--1",
    "0001",
    "-0",
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", TRICKY_CELLS)
def test_fast_and_exact_csv_parsers_agree(cell, dtype):
    text = f"a,y\n1,2\n{cell},3\n7,8\n".encode()

    def outcome(read):
        try:
            X, y = read(io.BytesIO(text), ["y"], dtype)
        except DatasetError as exc:
            return "error", exc.field, exc.message
        return "ok", X.dtype, X.tobytes(), y.tobytes()

    assert outcome(read_csv) == outcome(read_csv_exact)
