"""MariaDB servers of the tests' own on loopback: a real 3-node Galera cluster for the scale-out tests
(docs/galera.md), or one plain server that a fault test may stop and start again.

Each node is a ``mariadbd`` of its own, in a fresh data directory under a private temporary directory,
run as the ``mysql`` user (the rsync state transfer refuses to run as root), with four loopback ports:
SQL, group communication, incremental and full state transfer. The first node bootstraps the cluster
(``--wsrep-new-cluster``); the others join one at a time and take a full state transfer. ``stop()``
terminates them, last started first, and removes the directory. ``Cluster(1, galera=False)`` is one
plain server; ``stop_node`` and ``start_node`` take a node down (cleanly, or killed) and bring it back.

``Cluster(3, network=Network())`` puts each node on a host of its own (``tests/resilience/netns.py``):
its own network namespace and address, the standard ports, so a partition test can cut it from the others
or from an app server. The test process still reaches each node through its Unix socket, which no cut
touches; app servers (in namespaces of their own) connect over the namespaces' network as ``root``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

from tests.resilience.netns import Host, Network

PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"


def available() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    if not PROVIDER.exists():
        return f"no Galera provider at {PROVIDER} (the galera-4 package)"
    if not shutil.which("rsync"):
        return "no rsync (Galera's state transfer)"
    if not Path(MARIADBD).exists():
        return "no mariadbd"
    try:
        pwd.getpwnam("mysql")
    except KeyError:
        return "no mysql user to run the nodes as"
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Node:
    name: str
    dir: Path
    port: int
    base_port: int
    ist_port: int
    sst_port: int
    proc: subprocess.Popen | None = None
    host: Host | None = None  # its network namespace, when the cluster has a network

    @property
    def address(self) -> str:
        return self.host.address if self.host else "127.0.0.1"

    def url(self, database: str) -> str:
        return f"mysql://root:@{self.address}:{self.port}/{database}"

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        if self.host:  # the socket file: reachable from here whatever the namespace's network does
            return pymysql.connect(unix_socket=str(self.dir / "mysqld.sock"), user="root", password="",
                                   database=database, autocommit=True, connect_timeout=5)
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", database=database,
                               autocommit=True, connect_timeout=5)

    def status(self, name: str) -> str | None:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW STATUS LIKE %s", (name,))
            row = cur.fetchone()
            return row[1] if row else None


class Cluster:
    def __init__(self, size: int = 3, *, galera: bool = True, network: Network | None = None,
                 provider_options: str = "") -> None:
        self.galera, self.network, self.provider_options = galera, network, provider_options
        self.root = Path(tempfile.mkdtemp(prefix="openbank-galera-"))
        self.root.chmod(0o755)  # the nodes run as mysql
        if network is not None:  # a host each: the standard ports on the node's own address
            self.nodes = [Node(f"node{i + 1}", self.root / f"node{i + 1}", 3306, 4567, 4568, 4444,
                               host=network.add(f"n{i + 1}")) for i in range(size)]
        else:
            ports = _free_ports(4 * size)
            self.nodes = [Node(f"node{i + 1}", self.root / f"node{i + 1}", *ports[4 * i:4 * i + 4])
                          for i in range(size)]
        self.mysql = pwd.getpwnam("mysql")

    def _config(self, node: Node) -> Path:
        members = ",".join(f"{n.address}:{n.base_port}" for n in self.nodes)
        extra = f";{self.provider_options}" if self.provider_options else ""
        cnf = node.dir / "my.cnf"
        cnf.write_text(f"""[mysqld]
datadir={node.dir}/data
socket={node.dir}/mysqld.sock
pid-file={node.dir}/mysqld.pid
log-error={node.dir}/error.log
port={node.port}
bind-address={node.address}
skip-name-resolve
user=mysql
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_flush_log_at_trx_commit=2
max_connections=300
""" + (f"""wsrep_on=ON
wsrep_provider={PROVIDER}
wsrep_cluster_name=openbank_test
wsrep_cluster_address=gcomm://{members}
wsrep_node_name={node.name}
wsrep_node_address={node.address}:{node.base_port}
wsrep_provider_options="base_port={node.base_port};ist.recv_addr={node.address}:{node.ist_port};gcache.size=64M{extra}"
wsrep_sst_method=rsync
wsrep_sst_receive_address={node.address}:{node.sst_port}
""" if self.galera else ""))
        return cnf

    def _chown(self, path: Path) -> None:
        for dirpath, _, files in os.walk(path):
            os.chown(dirpath, self.mysql.pw_uid, self.mysql.pw_gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), self.mysql.pw_uid, self.mysql.pw_gid)

    def start(self, timeout_s: float = 120) -> Cluster:
        try:
            for i, node in enumerate(self.nodes):
                node.dir.mkdir()
                cnf = self._config(node)
                subprocess.run([INSTALL_DB, f"--defaults-file={cnf}", "--auth-root-authentication-method=normal",
                                "--skip-test-db", f"--datadir={node.dir}/data", "--user=mysql"],
                               check=True, capture_output=True, timeout=120)
                self._chown(node.dir)
                self.start_node(node, bootstrap=i == 0, timeout_s=timeout_s)
            if self.network is not None:  # the app servers connect over the namespaces' network
                with self.nodes[0].connect() as conn, conn.cursor() as cur:
                    who = f"'root'@'{self.network.subnet}.%'"
                    cur.execute(f"CREATE USER {who}")
                    cur.execute(f"GRANT ALL ON *.* TO {who} WITH GRANT OPTION")
            return self
        except BaseException:
            self.stop()
            raise

    def start_node(self, node: Node, *, bootstrap: bool = False, timeout_s: float = 120) -> None:
        args = [MARIADBD, f"--defaults-file={node.dir / 'my.cnf'}"] + (["--wsrep-new-cluster"] if bootstrap else [])
        if node.host:
            args = node.host.command(*args)  # `ip netns exec` execs the server: the pid is mariadbd's
        node.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready(node, timeout_s)

    def stop_node(self, node: Node, *, kill: bool = False) -> None:
        """Take a node down: SIGTERM (a clean shutdown) or SIGKILL (a crash)."""
        if node.proc is None or node.proc.poll() is not None:
            return
        node.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            node.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()

    def _wait_ready(self, node: Node, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                break
            try:
                if not self.galera:
                    node.status("Uptime")
                    return
                if node.status("wsrep_local_state_comment") == "Synced":
                    return
            except pymysql.MySQLError:
                pass
            time.sleep(0.5)
        log = (node.dir / "error.log").read_text(errors="replace")[-3000:] if (node.dir / "error.log").exists() else ""
        raise RuntimeError(f"MariaDB {node.name} did not come up{' Synced' if self.galera else ''}:\n{log}")

    def size(self) -> int:
        return int(self.nodes[0].status("wsrep_cluster_size") or 0)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.stop_node(node)
        shutil.rmtree(self.root, ignore_errors=True)
