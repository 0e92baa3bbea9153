"""Gunicorn settings, read from the environment so one image serves every deployment.

PORT (8000), BIND_HOST (127.0.0.1; the Docker image sets 0.0.0.0, which needs API keys),
WEB_CONCURRENCY (2), WEB_THREADS (16) and EVENTS_MAX_STREAMS (100) (see service/config.py),
WEB_TIMEOUT (30 s), WEB_GRACEFUL_TIMEOUT (30 s), WEB_KEEPALIVE (5 s), LOG_LEVEL (info).
"""

import logging
import os

from service.auth import auth_enabled
from service.config import from_env as api_config
from service.config import server_threads
from service.request_limits import MAX_HEADER_FIELD_BYTES

LOOPBACK = ("127.0.0.1", "localhost", "::1")
host = os.getenv("BIND_HOST", "127.0.0.1")
if not auth_enabled() and host not in LOOPBACK:
    # Without API keys anyone who can connect is trusted: never listen beyond this machine.
    logging.getLogger("gunicorn.error").warning(
        "no API keys configured (API_KEYS, API_KEYS_FILE): binding 127.0.0.1, not %s", host
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

# The heartbeat file must live in memory: on a container's overlay filesystem the fchmod
# heartbeat can block and get workers killed for "timeout".
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Gunicorn >= 25.1 opens a control socket at one fixed path per user by default; we do not use
# gunicornc, and several servers on one machine (tests, make run) would fight over that path.
control_socket_disable = True


def post_worker_init(worker) -> None:
    """End the followers of a worker that is stopping: it would wait its whole graceful
    timeout for them otherwise. Their clients reconnect, to another process, from where they
    were (Last-Event-ID)."""
    from service.events import set_stopping  # the app's modules load in workers, not here

    set_stopping(worker.wsgi, lambda: not worker.alive)
