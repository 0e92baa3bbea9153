"""The API's log lines: a request id on every line about a request, and gunicorn's own lines.

A request's id is its ``X-Request-ID`` header when that is a sensible id (1 to 128 letters,
digits and ``._:-``), else a new one; it is echoed in the response's ``X-Request-ID``, bound to
every line logged while the request is served, and stored with a job the request submits.
gunicorn writes the access line after the app is done: the app leaves that line's fields in
the WSGI environ (``ACCESS_FIELDS``) for ``GunicornLogger`` to add.
"""

import re
import uuid

from flask import Flask, Response, g, request
from gunicorn import glogging

from store import logs

from .ids import is_id

HEADER = "X-Request-ID"
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ACCESS_FIELDS = "backprop.log_fields"
# Names of the view arguments that are job ids (a model's id is its job's).
JOB_ID_ARGS = ("job_id", "model_id")


def request_id() -> str:
    """The current request's id (taken from its header or made up, once per request)."""
    rid = g.get("request_id")
    if rid is None:
        sent = request.headers.get(HEADER, "")
        rid = sent if VALID_ID.fullmatch(sent) else uuid.uuid4().hex
        g.request_id = rid
    return rid


def job_id_of_request() -> str | None:
    """The job id the request's URL names, if any (a model's id is its job's; an alias is
    neither, and is left out)."""
    args = request.view_args or {}
    value = next((args[name] for name in JOB_ID_ARGS if name in args), None)
    return value if value is not None and is_id(value) else None


def init_app(app: Flask) -> None:
    """Bind the request's ids for its log lines and echo its id; register this first, so that
    every line of the request, and every answer (errors too), carries it."""

    @app.before_request
    def bind_ids():
        g.job_id = job_id_of_request()
        g.log_token = logs.bind(request_id=request_id(), job_id=g.job_id)

    @app.after_request
    def echo_id(response: Response) -> Response:
        response.headers[HEADER] = request_id()
        # A request refused before its view (404, 405) has none bound.
        fields = {"request_id": request_id(), "job_id": g.get("job_id")}
        if request.url_rule is not None:
            fields["route"] = request.url_rule.rule
        request.environ[ACCESS_FIELDS] = {k: v for k, v in fields.items() if v is not None}
        return response

    @app.teardown_request
    def unbind_ids(exc):
        token = g.pop("log_token", None)
        if token is not None:
            logs.unbind(token)


class GunicornLogger(glogging.Logger):
    """gunicorn's logger: its lines in ``LOG_FORMAT``, and the request's ids on access lines.

    In JSON an access line is ``{"message": <the access_log_format line>, "request_id",
    "method", "path", "route", "status", "duration_ms", "job_id"?, ...}``.
    """

    def setup(self, cfg) -> None:
        super().setup(cfg)
        fmt = logs.log_format()
        # The app's own lines (and the libraries') go to the root logger: in the master it is
        # set up here, before the workers are forked, so they inherit it.
        logs.configure(cfg.loglevel, fmt)
        if fmt == "json":
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(logs.formatter(fmt))
                    handler.addFilter(logs.ContextFilter())

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        fields = {
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote_addr": environ.get("REMOTE_ADDR"),
            **environ.get(ACCESS_FIELDS, {}),
        }
        self.access_log.info(self.cfg.access_log_format, atoms, extra=fields)
