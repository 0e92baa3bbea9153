"""Gunicorn settings, read from the environment so one image serves every deployment.

PORT (8000), BIND_HOST (127.0.0.1; the Docker image sets 0.0.0.0, which needs API keys),
WEB_CONCURRENCY (2), WEB_THREADS (16) and EVENTS_MAX_STREAMS (100) (see service/config.py),
WEB_TIMEOUT (30 s), WEB_GRACEFUL_TIMEOUT (30 s), WEB_KEEPALIVE (5 s), LOG_LEVEL (info),
LOG_FORMAT (text, or json: one JSON object per line), PROMETHEUS_MULTIPROC_DIR (where the web
processes keep their metrics; a directory of this server's own when unset).
"""

import os
import shutil
import tempfile
from pathlib import Path

# prometheus_client settles on multiprocess mode for good when it is first imported, which the
# service imports below do (in this master, before the web processes are forked): the
# directory must be set first. It is wiped when the server starts (on_starting), not here,
# since a configuration reload runs this file again while the web processes count on.
METRICS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
OWN_METRICS_DIR = Path(SHM) / f"backprop-metrics-{os.getpid()}"  # removed again on exit
os.environ.setdefault(METRICS_DIR_VAR, str(OWN_METRICS_DIR))
metrics_dir = Path(os.environ[METRICS_DIR_VAR])
metrics_dir.mkdir(parents=True, exist_ok=True)

from prometheus_client import multiprocess  # noqa: E402

from service.auth import auth_enabled  # noqa: E402
from service.config import from_env as api_config  # noqa: E402
from service.config import server_threads  # noqa: E402
from service.logs import GunicornLogger  # noqa: E402
from service.request_limits import MAX_HEADER_FIELD_BYTES  # noqa: E402

LOOPBACK = ("127.0.0.1", "localhost", "::1")
host = os.getenv("BIND_HOST", "127.0.0.1")
bind_warning = None
if not auth_enabled() and host not in LOOPBACK:
    # Without API keys anyone who can connect is trusted: never listen beyond this machine.
    bind_warning = (
        f"no API keys configured (API_KEYS, API_KEYS_FILE): binding 127.0.0.1, not {host}"
    )
    host = "127.0.0.1"
bind = f"{host}:{int(os.getenv('PORT', '8000'))}"

# Training runs in the rq workers, so the web processes only validate, enqueue and read Redis:
# a fixed small number, not cpu_count() * 2.
workers = int(os.getenv("WEB_CONCURRENCY", "2"))
# Threads overlap the Redis round trips of concurrent requests and keep connections alive. They
# cost little while idle, and a thread waiting for a slow client's body (at most
# BODY_TIMEOUT_SECONDS between bytes, see service/bodies.py) is one the others do not have.
worker_class = "gthread"
# Followers (event streams and long polls) hold a thread each for as long as they last; each
# process keeps at most EVENTS_MAX_STREAMS of them (503 past that, service/events.py), on
# threads of their own on top of WEB_THREADS, so they never take those of other requests.
threads = server_threads(api_config())

timeout = int(os.getenv("WEB_TIMEOUT", "30"))
graceful_timeout = int(os.getenv("WEB_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.getenv("WEB_KEEPALIVE", "5"))

# gunicorn answers a request line or header field over its limits itself, in HTML. Its limits
# sit above the app's (service.request_limits), so the app answers those with the JSON error
# body; only requests past gunicorn's ceilings get its short HTML page. 8190 is the most
# limit_request_line takes; the request line is the method, the URL and " HTTP/1.1".
limit_request_line = 8190
limit_request_field_size = 2 * MAX_HEADER_FIELD_BYTES

accesslog = "-"
errorlog = "-"
loglevel = os.getenv("LOG_LEVEL", "info")
# LOG_FORMAT for gunicorn's lines and the app's, and the request's id on each access line.
logger_class = GunicornLogger
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" request_id=%({x-request-id}o)s'
)

# The heartbeat file must live in memory: on a container's overlay filesystem the fchmod
# heartbeat can block and get workers killed for "timeout".
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Gunicorn >= 25.1 opens a control socket at one fixed path per user by default; we do not use
# gunicornc, and several servers on one machine (tests, make run) would fight over that path.
control_socket_disable = True


def on_starting(server) -> None:
    """Once, as the master starts: the warning above, in the server's log format, and a clean
    metrics directory (counts of an earlier server would be added to this one's)."""
    if bind_warning:
        server.log.warning(bind_warning)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server, worker) -> None:
    """A web process has exited: its counters stay (they keep counting in the sums); its
    live gauges, if any, go."""
    multiprocess.mark_process_dead(worker.pid, str(metrics_dir))


def on_exit(server) -> None:
    if metrics_dir == OWN_METRICS_DIR:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def post_worker_init(worker) -> None:
    """End the followers of a worker that is stopping: it would wait its whole graceful
    timeout for them otherwise. Their clients reconnect, to another process, from where they
    were (Last-Event-ID)."""
    from service.events import set_stopping  # the app's modules load in workers, not here

    set_stopping(worker.wsgi, lambda: not worker.alive)
