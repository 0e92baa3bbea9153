"""``/v1/datasets``: training data uploaded once, as JSON, CSV or NumPy files, for many jobs."""

import numpy as np
from flask import current_app, request, url_for
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError

import store
from backprop import SpecError
from backprop.preprocessing import class_labels
from backprop.spec import as_dtype

from .auth import current_tenant, owned_or_404
from .dataset_formats import STREAMED_FORMATS, DatasetError, DatasetTooLarge
from .endpoints import raw_body
from .errors import Blueprint
from .extensions import limiter, redis_conn
from .schemas import MAX_UNITS, DatasetQuerySchema, DatasetSchema, DatasetUploadSchema

blp = Blueprint("datasets", __name__, url_prefix="/v1/datasets", description="Training data")

JSON = "application/json"
UPLOAD_DOC = {
    "required": True,
    "content": {
        JSON: {"schema": DatasetUploadSchema},
        **{kind: {"schema": f.openapi} for kind, f in STREAMED_FORMATS.items()},
    },
}
MEDIA_TYPES = [JSON, *STREAMED_FORMATS]


FIELDS = ("id", "rows", "columns", "outputs", "dtype", "sha256", "created_at")


def dataset_view(record: dict) -> dict:
    """A stored dataset record as the API shows it (not its owner or class labels)."""
    return {key: record[key] for key in FIELDS}


def get_or_404(dataset_id: str) -> dict:
    """The dataset's record; 404 when there is none or another tenant owns it."""
    return owned_or_404(store.get_dataset(redis_conn(), dataset_id), "dataset", dataset_id)


def read_json(dtype: str, max_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """X and y of a JSON upload, in ``dtype``; 400 or 422 naming the field."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # silent covers bad JSON (ValueError), not nesting past the limit
        body = None
    if body is None:
        abort(400, errors={"body": ["Not valid JSON."]})
    try:
        data = DatasetUploadSchema().load(body)
    except ValidationError as exc:
        abort(422, errors=exc.messages)
    width = data["X"].shape[1] + data["y"].shape[1]
    if width > max_columns:
        abort(422, errors={"X": [f"X and y have {width:,} columns; at most {max_columns:,}."]})
    try:
        return as_dtype(data["X"], dtype, "X"), as_dtype(data["y"], dtype, "y")
    except SpecError as exc:
        abort(422, errors={exc.path: [exc.message]})


def labels_of(y: np.ndarray) -> list | None:
    """y's class labels when it could train ``targets: "classes"``, so jobs can be checked
    against it without loading it; None otherwise."""
    if y.shape[1] != 1:
        return None
    try:
        classes = class_labels(y)
    except SpecError:
        return None
    return classes.tolist() if len(classes) <= MAX_UNITS else None


@raw_body  # JSON, CSV or a NumPy file
@blp.route("")
class Datasets(MethodView):
    @limiter.limit(lambda: current_app.config["RATE_LIMIT_SUBMIT"])
    @blp.arguments(DatasetQuerySchema, location="query")
    @blp.doc(requestBody=UPLOAD_DOC)
    @blp.response(201, DatasetSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(200, schema=DatasetSchema, description="The same upload: the same dataset.")
    @blp.alt_response(413, description="Larger than MAX_DATASET_BYTES.")
    @blp.alt_response(415, description="Not JSON, CSV or a NumPy file.")
    def post(self, query):
        """Upload a dataset: JSON {X, y}, CSV with a header row, or an .npy/.npz file.

        CSV (``text/csv``): ``target`` names the target columns; every other column is an
        input. NumPy (``application/octet-stream``): an .npz with arrays X and y, or an .npy
        2-D array with ``target`` giving target column indices. Uploading the same content
        again returns the same dataset with 200.
        """
        dtype, targets = query["dtype"], query.get("target", [])
        limit = current_app.config["MAX_DATASET_BYTES"]
        columns = current_app.config["MAX_COLUMNS"]
        try:
            if request.mimetype == JSON:
                if targets:
                    abort(422, errors={"target": ["JSON names X and y itself; leave it out."]})
                X, y = read_json(dtype, columns)
            elif request.mimetype in STREAMED_FORMATS:
                request.max_content_length = limit
                read = STREAMED_FORMATS[request.mimetype].read
                X, y = read(request.stream, targets, dtype, limit, columns)
            else:
                kinds = f"{', '.join(MEDIA_TYPES[:-1])} or {MEDIA_TYPES[-1]}"
                abort(415, message=f"Send the dataset as {kinds}.")
        except DatasetTooLarge as exc:
            abort(413, message=exc.message)
        except DatasetError as exc:
            abort(422, errors={exc.field: [exc.message]})
        record, created = store.create_dataset(
            redis_conn(), current_tenant().name, X, y, labels_of(y)
        )
        location = {"Location": url_for("datasets.Dataset", dataset_id=record["id"])}
        return dataset_view(record), 201 if created else 200, location


@blp.route("/<rid:dataset_id>")
class Dataset(MethodView):
    @blp.response(200, DatasetSchema)
    def get(self, dataset_id):
        """Rows, columns, outputs, dtype and SHA-256 of one dataset."""
        return dataset_view(get_or_404(dataset_id))

    @blp.response(204)
    def delete(self, dataset_id):
        """Delete a dataset; queued jobs that still need it fail with dataset_missing."""
        get_or_404(dataset_id)
        store.delete_dataset(redis_conn(), dataset_id)
