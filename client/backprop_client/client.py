"""The client: one method per API operation, over ``requests``.

Every HTTP call goes through ``Client._call`` with a name from ``ROUTES``, so that table is the
whole list of routes the client uses (a test checks each against ``openapi.yaml``).
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal, overload

import requests

from backprop_client.aliases import Alias
from backprop_client.errors import ApiError, RateLimited, Unavailable, error_from
from backprop_client.sse import Event, lines, parse
from backprop_client.sweeps import Sweep
from backprop_client.waiting import FINAL_STATUSES, check, draw

ROUTES: dict[str, tuple[str, str]] = {
    "submit": ("POST", "/v1/jobs"),
    "list_jobs": ("GET", "/v1/jobs"),
    "get_job": ("GET", "/v1/jobs/{job_id}"),
    "cancel_job": ("DELETE", "/v1/jobs/{job_id}"),
    "update_job": ("PATCH", "/v1/jobs/{job_id}"),
    "job_spec": ("GET", "/v1/jobs/{job_id}/spec"),
    "job_events": ("GET", "/v1/jobs/{job_id}/events"),
    "job_history": ("GET", "/v1/jobs/{job_id}/history"),
    "get_model": ("GET", "/v1/models/{model_id}"),
    "predict": ("POST", "/v1/models/{model_id}/predict"),
    "model_weights": ("GET", "/v1/models/{model_id}/weights"),
    "model_onnx": ("GET", "/v1/models/{model_id}/onnx"),
    "upload_dataset": ("POST", "/v1/datasets"),
    "get_dataset": ("GET", "/v1/datasets/{dataset_id}"),
    "submit_sweep": ("POST", "/v1/sweeps"),
    "get_sweep": ("GET", "/v1/sweeps/{sweep_id}"),
    "cancel_sweep": ("DELETE", "/v1/sweeps/{sweep_id}"),
    "list_aliases": ("GET", "/v1/aliases"),
    "set_alias": ("PUT", "/v1/aliases/{name}"),
    "get_alias": ("GET", "/v1/aliases/{name}"),
    "delete_alias": ("DELETE", "/v1/aliases/{name}"),
}
SUBMIT_RETRIES = 5  # attempts after the first for a 429 or 503 on submit
MAX_RETRY_SLEEP = 30.0  # seconds: a longer Retry-After is cut to this
TIMEOUT = 30.0  # seconds for an ordinary request
STREAM_READ_TIMEOUT = 40.0  # seconds without a byte; the server sends a heartbeat every 15 s
LONG_POLL_SECONDS = 30  # ?wait= of one long poll (the server allows at most 60)
RECONNECT_DELAY = 0.5  # seconds before reconnecting a cut stream
UNSET: Any = object()  # an argument not given, where None means "clear it"


class Client:
    """A client of one backprop-service.

    Args:
        url: The service's base URL, e.g. ``http://127.0.0.1:8000``; ``BACKPROP_URL`` if None.
        api_key: Sent as ``Authorization: Bearer``; ``BACKPROP_API_KEY`` if None.
        session: A ``requests.Session`` to use (a new one by default).
        retries: How many times a submit answered 429 or 503 (a sweep: 429) is sent again.
        max_retry_sleep: The longest wait, in seconds, before such a retry (a longer
            ``Retry-After`` is cut to this).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        session: requests.Session | None = None,
        *,
        retries: int = SUBMIT_RETRIES,
        max_retry_sleep: float = MAX_RETRY_SLEEP,
    ):
        self.retries, self.max_retry_sleep = retries, max_retry_sleep
        url = url or os.environ.get("BACKPROP_URL")
        if not url:
            raise ValueError("No URL: pass url= or set BACKPROP_URL.")
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        api_key = api_key or os.environ.get("BACKPROP_API_KEY")
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def _call(
        self, route: str, ids: dict | None = None, *, expect_json: bool = True, **kwargs: Any
    ) -> requests.Response:
        """Send the request of ``route`` (a ``ROUTES`` name); raise the typed error on 4xx/5xx."""
        method, template = ROUTES[route]
        kwargs.setdefault("timeout", TIMEOUT)
        response = self.session.request(method, self.url + template.format(**(ids or {})), **kwargs)
        if response.status_code >= 400:
            raise error_from(response)
        return response

    def _retrying(
        self, route: str, retried: tuple[type[ApiError], ...], **kwargs: Any
    ) -> requests.Response:
        """``_call``, sent again after ``Retry-After`` (cut to ``max_retry_sleep``) when it
        raises one of ``retried``, ``retries`` times at most; then the error is raised."""
        for attempt in range(self.retries + 1):
            try:
                return self._call(route, **kwargs)
            except retried as error:
                if attempt == self.retries:
                    raise
                time.sleep(min(error.retry_after, self.max_retry_sleep))
        raise AssertionError("unreachable")

    # Jobs

    def submit(
        self,
        network: dict | None = None,
        training: dict | None = None,
        X: Any = None,
        y: Any = None,
        dataset: str | Dataset | None = None,
        *,
        initial_model_id: str | Model | None = None,
        keep_preprocessing: bool | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Job:
        """Submit a job; its ``Job``.

        Give the data as ``X`` and ``y`` (lists or arrays) or as an uploaded ``dataset``
        (a ``Dataset`` or its id). ``initial_model_id`` (a ``Model``, its id or an alias)
        starts from that model's weights; ``keep_preprocessing=False`` fits standardisation
        and labels on this job's data instead of keeping the parent's. ``extra`` fields
        (``name``, ``tags``, ``metadata``, ``preprocessing``, ``callbacks``, ...) go into the
        body as they are. The request carries an ``Idempotency-Key`` (a fresh one unless
        given), so its retries after 429 or 503 (waiting ``Retry-After``) never submit twice;
        the same key with another body raises ``Conflict``.
        """
        body = _job_body(network, training, X, y, dataset, extra)
        if initial_model_id is not None:
            body["initial_model_id"] = _ref(initial_model_id)
        if keep_preprocessing is not None:
            body["keep_preprocessing"] = keep_preprocessing
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        response = self._retrying("submit", (RateLimited, Unavailable), json=body, headers=headers)
        return Job(self, response.json())

    def job(self, job_id: str) -> Job:
        """The job ``job_id`` as the service shows it now."""
        return Job(self, self._call("get_job", {"job_id": job_id}).json())

    def list_jobs(
        self,
        limit: int = 20,
        cursor: str | None = None,
        *,
        status: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        name: str | None = None,
        dataset_id: str | None = None,
        sweep_id: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        sort: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """One page of jobs and the cursor of the next page (None at the end).

        The server filters: every filter given must hold (``tags``: all of them; ``name``: a
        prefix; the times ISO 8601, exclusive). ``sort`` is ``-created_at`` (newest first, the
        default), ``created_at``, ``final_loss`` or a final metric, ``-`` for highest first.
        A page may hold fewer than ``limit`` jobs and still a cursor: follow it.
        """
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        given = {
            "status": status,
            "name": name,
            "dataset_id": dataset_id,
            "sweep_id": sweep_id,
            "created_after": created_after,
            "created_before": created_before,
            "sort": sort,
        }
        params.update({key: value for key, value in given.items() if value is not None})
        if tags:
            params["tag"] = list(tags)  # requests repeats the parameter
        body = self._call("list_jobs", params=params).json()
        return body["jobs"], body.get("next_cursor")

    def update_job(self, job_id: str, **changes: Any) -> dict:
        """Change a job's ``name``, ``tags`` and/or ``metadata`` (None clears one); the job.

        ``Job.update`` does the same and keeps the answer in ``Job.record``.
        """
        return self._call("update_job", {"job_id": job_id}, json=changes).json()

    def job_spec(self, job_id: str) -> dict:
        """The job as submitted (normalised), without its data and initial weights."""
        return self._call("job_spec", {"job_id": job_id}).json()

    # Models

    def model(self, model_id: str) -> Model:
        """The model ``model_id``, or the one your alias of that name points at now (its
        spec, metrics and parameter count in ``.info``; ``.id`` is its id, so the ``Model``
        stays that model when the alias moves)."""
        return Model(self, self._call("get_model", {"model_id": model_id}).json())

    def predict(self, model: str | Model, rows: Any) -> dict:
        """``{"outputs": [[...]], "labels"?: [...]}`` for ``rows`` (a list or a 2-D array).

        ``model`` is a ``Model``, a model id or an alias: one request, which the server
        answers with the model the alias points at when it arrives.
        """
        return self._call(
            "predict", {"model_id": _ref(model)}, json={"inputs": _plain(rows)}
        ).json()

    # Sweeps

    @overload
    def sweep(
        self,
        network: dict | None = ...,
        training: dict | None = ...,
        X: Any = ...,
        y: Any = ...,
        dataset: str | Dataset | None = ...,
        *,
        parameters: dict[str, dict],
        objective: dict | None = ...,
        parallel: int | None = ...,
        early_stopping: dict | None = ...,
        max_trials: int | None = ...,
        seed: int | None = ...,
        dry_run: Literal[False] = ...,
        **extra: Any,
    ) -> Sweep: ...

    @overload
    def sweep(
        self,
        network: dict | None = ...,
        training: dict | None = ...,
        X: Any = ...,
        y: Any = ...,
        dataset: str | Dataset | None = ...,
        *,
        parameters: dict[str, dict],
        objective: dict | None = ...,
        parallel: int | None = ...,
        early_stopping: dict | None = ...,
        max_trials: int | None = ...,
        seed: int | None = ...,
        dry_run: Literal[True],
        **extra: Any,
    ) -> dict: ...

    def sweep(
        self,
        network: dict | None = None,
        training: dict | None = None,
        X: Any = None,
        y: Any = None,
        dataset: str | Dataset | None = None,
        *,
        parameters: dict[str, dict],
        objective: dict | None = None,
        parallel: int | None = None,
        early_stopping: dict | None = None,
        max_trials: int | None = None,
        seed: int | None = None,
        dry_run: bool = False,
        **extra: Any,
    ) -> Sweep | dict:
        """Start a hyperparameter sweep over a base job; its ``Sweep``.

        The base job is given as to ``submit`` (``network``, ``training``, ``X`` and ``y`` or
        ``dataset``, and ``extra`` fields). ``parameters`` maps spec paths
        (``training.optimizer.learning_rate``, ``network.layers[0].units``) to
        ``{"values": [...]}`` (a grid) or a distribution (``{"distribution": "log_uniform",
        "low": ..., "high": ...}``, with ``max_trials`` and ``seed``: a random search).
        ``objective`` is ``{"metric", "goal"}`` (``val_loss``, min, by default); ``parallel``
        the most trials queued or started at once (1); ``early_stopping``
        ``{"rule": "median", "min_epochs": k}``. Every trial is checked first: an invalid
        one raises ``ValidationError`` naming it, and nothing is queued.

        With ``dry_run=True`` nothing is queued; the answer is ``{valid, trials, estimate,
        limits}``, the estimate summed over the trials. A 429 is retried after
        ``Retry-After`` as on submit (a refused sweep stores nothing); a 503 is not, since a
        sweep has no idempotency key.
        """
        base = _job_body(network, training, X, y, dataset, extra)
        given = {
            "objective": objective,
            "parallel": parallel,
            "early_stopping": early_stopping,
            "max_trials": max_trials,
            "seed": seed,
        }
        body = {"job": base, "parameters": parameters}
        body.update({key: value for key, value in given.items() if value is not None})
        return self.start_sweep(body, dry_run=dry_run)

    @overload
    def start_sweep(self, body: dict[str, Any], dry_run: Literal[False] = ...) -> Sweep: ...

    @overload
    def start_sweep(self, body: dict[str, Any], dry_run: Literal[True]) -> dict: ...

    def start_sweep(self, body: dict[str, Any], dry_run: bool = False) -> Sweep | dict:
        """``sweep`` from the whole request body, as ``POST /v1/sweeps`` takes it: ``job``,
        ``parameters``, ``objective``, ... (what ``backprop sweeps submit`` sends)."""
        params = {"dry_run": "true"} if dry_run else None
        response = self._retrying("submit_sweep", (RateLimited,), json=body, params=params)
        return response.json() if dry_run else Sweep(self, response.json())

    def get_sweep(self, sweep_id: str) -> Sweep:
        """The sweep ``sweep_id`` as the service shows it now."""
        return Sweep(self, self._call("get_sweep", {"sweep_id": sweep_id}).json())

    # Aliases

    def set_alias(self, name: str, model: str | Model) -> Alias:
        """Point your alias ``name`` at a finished model of yours (create or move it)."""
        body = {"model_id": _ref(model)}
        return Alias.from_json(self._call("set_alias", {"name": name}, json=body).json())

    def alias(self, name: str) -> Alias:
        """Your alias ``name``: the model it points at and its moves, newest first."""
        return Alias.from_json(self._call("get_alias", {"name": name}).json())

    def delete_alias(self, name: str) -> None:
        """Delete your alias ``name`` and its history (its model stays)."""
        self._call("delete_alias", {"name": name})

    def aliases(self) -> dict[str, str]:
        """Your aliases: name -> the model id it points at."""
        entries = self._call("list_aliases").json()["aliases"]
        return {entry["name"]: entry["model_id"] for entry in entries}

    # Datasets

    def upload_dataset(
        self, data: Any, target: str | list | None = None, dtype: str | None = None
    ) -> Dataset:
        """Upload training data once; its ``Dataset`` (the same id for the same numbers).

        Args:
            data: A path to a ``.csv``, ``.npy`` or ``.npz`` file; a 2-D ndarray (sent as
                ``.npy``, ``target`` giving its target column indices); a pair ``(X, y)`` of
                arrays (sent as ``.npz``); or a pandas DataFrame (sent as CSV, ``target``
                naming the target columns).
            target: The target column name(s) for CSV, or index(es) for ``.npy``.
            dtype: ``float64`` (the default on the server) or ``float32``.
        """
        params: dict[str, Any] = {}
        if target is not None:
            targets = target if isinstance(target, list | tuple) else [target]
            params["target"] = ",".join(str(t) for t in targets)
        if dtype:
            params["dtype"] = dtype
        content_type, payload = _dataset_payload(data)
        response = self._call(
            "upload_dataset", params=params, data=payload, headers={"Content-Type": content_type}
        )
        return Dataset(response.json())

    def dataset(self, dataset_id: str) -> Dataset:
        """The dataset ``dataset_id``: rows, columns, outputs, dtype and sha256."""
        return Dataset(self._call("get_dataset", {"dataset_id": dataset_id}).json())


class Job:
    """A submitted job. ``record`` is its state as last read; ``refresh()`` reads it again."""

    def __init__(self, client: Client, record: dict):
        self.client, self.record = client, record
        self.id: str = record["id"]

    def __repr__(self) -> str:
        return f"Job({self.id!r}, status={self.status!r})"

    @property
    def status(self) -> str:
        """``queued``, ``started``, ``finished``, ``failed`` or ``canceled``, as last read."""
        return self.record["status"]

    def refresh(self, wait: int | None = None) -> dict:
        """Read the job again; with ``wait`` (1-60 s), once it has ended or after ``wait``."""
        params = {"wait": wait} if wait else None
        timeout = TIMEOUT + (wait or 0)
        self.record = self.client._call(
            "get_job", {"job_id": self.id}, params=params, timeout=timeout
        ).json()
        return self.record

    def cancel(self) -> dict:
        """Ask the service to cancel the job (a started one stops at its next epoch)."""
        self.record = self.client._call("cancel_job", {"job_id": self.id}).json()
        return self.record

    def update(self, *, name: Any = UNSET, tags: Any = UNSET, metadata: Any = UNSET) -> dict:
        """Change the job's ``name``, ``tags`` and/or ``metadata``; None clears one, one not
        given is left as it is. The job as it is now (kept in ``record``)."""
        given = {"name": name, "tags": tags, "metadata": metadata}
        changes = {key: value for key, value in given.items() if value is not UNSET}
        self.record = self.client.update_job(self.id, **changes)
        return self.record

    def events(
        self, last_event_id: str | None = None, deadline: float | None = None
    ) -> Iterator[tuple[str, dict]]:
        """``(event, data)`` pairs from the job's SSE stream until its final status.

        A cut stream is reopened with ``Last-Event-ID``, so no history row is missed or
        repeated. Raises ``TimeoutError`` past ``deadline`` (a ``time.monotonic()`` value).
        """
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            try:
                response = self.client._call(
                    "job_events",
                    {"job_id": self.id},
                    headers=headers,
                    stream=True,
                    timeout=(TIMEOUT, _read_timeout(deadline)),
                )
                with response:
                    for event in parse(lines(response.iter_content(None))):
                        last_event_id = event.id if event.id is not None else last_event_id
                        data = json.loads(event.data)
                        yield event.event, data
                        if event.event == "status" and data["status"] in FINAL_STATUSES:
                            return
                        check(deadline, "job")
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                pass  # cut (e.g. the API process restarting): reconnect from last_event_id
            check(deadline, "job")
            time.sleep(RECONNECT_DELAY)

    def wait(self, progress: bool = False, timeout: float | None = None) -> dict:
        """Block until the job has ended; its final record.

        Follows the SSE stream; if the service cannot stream (503: too many followers), long
        polls ``GET /v1/jobs/{id}?wait=`` instead. ``progress`` draws a one-line progress bar
        on stderr. Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for name, data in self.events(deadline=deadline):
                if progress and name == "progress":
                    draw(progress_line(data), sys.stderr)
        except Unavailable:
            self._poll(deadline)
        finally:
            if progress:
                sys.stderr.write("\n")
        return self.refresh()

    def _poll(self, deadline: float | None) -> None:
        """Long poll until the job has ended."""
        while self.refresh()["status"] not in FINAL_STATUSES:
            check(deadline, "job")
            left = LONG_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            try:
                self.refresh(wait=max(1, min(LONG_POLL_SECONDS, int(left))))
            except Unavailable as error:
                time.sleep(min(error.retry_after, MAX_RETRY_SLEEP))

    def history(self) -> Any:
        """Every epoch's ``{epoch, loss, val_loss?, <metric>...}`` as columns.

        A pandas DataFrame when pandas is installed, else a dict of lists.
        """
        columns: dict[str, list] = {}
        offset = 0
        while True:
            response = self.client._call(
                "job_history", {"job_id": self.id}, params={"offset": offset}
            )
            page = response.json()
            for name, values in page.items():
                columns.setdefault(name, []).extend(values)
            offset += len(page.get("epoch", []))
            if "next" not in response.links or not page.get("epoch"):
                break
        try:
            import pandas
        except ImportError:
            return columns
        return pandas.DataFrame(columns)

    def model(self) -> Model:
        """The model this job trained (it must have finished)."""
        model_id = self.record.get("model_id") or self.refresh().get("model_id")
        if not model_id:
            raise ValueError(f"Job {self.id} has no model (status {self.status}).")
        return self.client.model(model_id)


class Model:
    """A trained model; ``info`` holds its spec, metrics and parameter count."""

    def __init__(self, client: Client, info: dict):
        self.client, self.info = client, info
        self.id: str = info["id"]

    def __repr__(self) -> str:
        return f"Model({self.id!r})"

    def predict(self, rows: Any) -> dict:
        """``{"outputs": [[...]], "labels"?: [...]}`` for ``rows`` (a list or a 2-D array)."""
        return self.client.predict(self.id, rows)

    def download(self, path: str | os.PathLike, format: str = "npz") -> str:
        """Write the weights to ``path`` as ``npz`` (W0, b0, ...) or ``onnx``; the path."""
        if format == "npz":
            route, params = "model_weights", {"format": "npz"}
        elif format == "onnx":
            route, params = "model_onnx", None
        else:
            raise ValueError(f"format must be 'npz' or 'onnx', not {format!r}")
        response = self.client._call(route, {"model_id": self.id}, params=params, stream=True)
        with response, open(path, "wb") as out:
            for chunk in response.iter_content(1 << 16):
                out.write(chunk)
        return os.fspath(path)


class Dataset:
    """An uploaded dataset; ``info`` holds rows, columns, outputs, dtype and sha256."""

    def __init__(self, info: dict):
        self.info = info
        self.id: str = info["id"]

    def __repr__(self) -> str:
        return f"Dataset({self.id!r})"


def progress_line(progress: dict) -> str:
    """``epoch 12/100 [###.......] loss 0.1234 eta 3s`` for a ``progress`` event."""
    epoch, epochs = progress.get("epoch") or 0, progress.get("epochs") or 0
    filled = int(20 * epoch / epochs) if epochs else 0
    loss, eta = progress.get("loss"), progress.get("eta_seconds")
    text = f"epoch {epoch}/{epochs} [{'#' * filled}{'.' * (20 - filled)}]"
    if loss is not None:
        text += f" loss {loss:.6g}"
    if progress.get("val_loss") is not None:
        text += f" val_loss {progress['val_loss']:.6g}"
    if eta is not None:
        text += f" eta {eta:.1f}s"
    return text


def _read_timeout(deadline: float | None) -> float:
    if deadline is None:
        return STREAM_READ_TIMEOUT
    return max(1.0, min(STREAM_READ_TIMEOUT, deadline - time.monotonic()))


def _job_body(
    network: dict | None,
    training: dict | None,
    X: Any,
    y: Any,
    dataset: str | Dataset | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """A job's JSON body, as ``POST /v1/jobs`` and a sweep's base job take it."""
    body: dict[str, Any] = {key: value for key, value in extra.items() if value is not None}
    if network is not None:
        body["network"] = network
    if training is not None:
        body["training"] = training
    if dataset is not None:
        body["dataset_id"] = dataset.id if isinstance(dataset, Dataset) else dataset
    elif X is not None or y is not None:
        body["data"] = {"X": _plain(X), "y": _plain(y)}
    return body


def _ref(model: str | Model) -> str:
    """A model's id, or the id or alias given."""
    return model.id if isinstance(model, Model) else model


def _plain(value: Any) -> Any:
    """Lists for JSON: ndarrays and DataFrames are converted, lists pass through."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return value.tolist() if hasattr(value, "tolist") else value


def _dataset_payload(data: Any) -> tuple[str, bytes]:
    """The content type and bytes of an upload (see ``Client.upload_dataset``)."""
    if isinstance(data, str | os.PathLike):
        path = os.fspath(data)
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in (".csv", ".npy", ".npz"):
            raise ValueError(f"{path}: a dataset file is .csv, .npy or .npz")
        with open(path, "rb") as handle:
            payload = handle.read()
        return ("text/csv" if suffix == ".csv" else "application/octet-stream"), payload
    if hasattr(data, "to_csv"):  # a pandas DataFrame
        return "text/csv", data.to_csv(index=False).encode()
    import numpy

    buffer = io.BytesIO()
    if isinstance(data, tuple) and len(data) == 2:
        numpy.savez(buffer, X=numpy.asarray(data[0]), y=numpy.asarray(data[1]))
    else:
        numpy.save(buffer, numpy.asarray(data), allow_pickle=False)
    return "application/octet-stream", buffer.getvalue()


__all__ = [
    "Alias",
    "ApiError",
    "Client",
    "Dataset",
    "Event",
    "Job",
    "Model",
    "ROUTES",
    "Sweep",
    "progress_line",
]
