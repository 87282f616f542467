"""Real companions for the production tests: private PostgreSQL 15 clusters (a primary, a
hot standby of it) and a PgBouncer in transaction mode, each on a free port under a temp dir.

Everything runs as the ``postgres`` OS user when the tests run as root (``initdb`` and
``pgbouncer`` refuse root). Every ``start`` has a ``stop`` that the fixtures call in a
finalizer, so nothing outlives the run, also when a test fails.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
OS_USER = "postgres"
START_TIMEOUT_S = 60

# Durability off: these clusters live for one test module; crash safety only matters for
# the "immediate" restart, and that one replays WAL, which fsync=off still writes.
CLUSTER_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 4
hot_standby = on
wal_receiver_status_interval = 1s
hot_standby_feedback = on
logging_collector = off
"""

PGBOUNCER_INI = """
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir = {socket_dir}
auth_type = trust
auth_file = {auth_file}
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
max_db_connections = 40
; statement_timeout is NOT listed: a client that sends it as a startup parameter is refused,
; as by a default PgBouncer, so sets-db must never send it.
ignore_startup_parameters = extra_float_digits
server_reset_query =
logfile = {logfile}
pidfile = {pidfile}
admin_users = postgres
"""


def free_port() -> int:
    """A port nobody listens on: bound then closed, free for the (short) life of a test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *args] if os.geteuid() == 0 else args


def run(*args: str | Path) -> str:
    """Run a server tool as the postgres user; a failure shows its output."""
    result = subprocess.run(
        _as_postgres([str(a) for a in args]), capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{args[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def private_dir(prefix: str) -> Path:
    """A new temp dir the postgres user owns (initdb wants its data dir to be its own)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def wait_for_port(port: int, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout} s")


def url_for(port: int, database: str = "postgres") -> str:
    return f"postgres://postgres@127.0.0.1:{port}/{database}"


@dataclass
class Cluster:
    """One PostgreSQL 15 server of our own: ``pg_ctl`` on a data dir under ``root``."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return url_for(self.port, database)

    def configure(self) -> None:
        conf = CLUSTER_CONF.format(port=self.port, socket_dir=self.root)
        # Appended: for a standby this overrides the primary's copied settings (last one wins).
        run("sh", "-c", f"cat >> '{self.data}/postgresql.conf' <<'EOF'\n{conf}\nEOF")

    def init(self) -> Cluster:
        run(
            PG_BIN / "initdb",
            "-D",
            self.data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        self.configure()
        return self

    def pg_ctl(self, action: str, *options: str) -> None:
        run(
            PG_BIN / "pg_ctl",
            action,
            "-D",
            self.data,
            "-l",
            self.log,
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            *options,
        )

    def start(self) -> Cluster:
        self.pg_ctl("start")
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self.pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self.pg_ctl("restart", "-m", mode)

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def standby(self, root: Path) -> Cluster:
        """A streaming hot standby of this cluster (``pg_basebackup -R``), not started yet."""
        replica = Cluster(root)
        run(
            PG_BIN / "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-D",
            replica.data,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        replica.configure()
        return replica

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PgBouncer:
    """PgBouncer in transaction mode in front of ``host:port``, every database name passed
    through (the tests' throwaway databases have random names)."""

    root: Path
    target_port: int
    target_host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return url_for(self.port, database)

    def start(self) -> PgBouncer:
        auth_file = self.root / "userlist.txt"
        auth_file.write_text('"postgres" ""\n')
        ini = self.root / "pgbouncer.ini"
        ini.write_text(
            PGBOUNCER_INI.format(
                host=self.target_host,
                port=self.target_port,
                listen_port=self.port,
                socket_dir=self.root,
                auth_file=auth_file,
                logfile=self.root / "pgbouncer.log",
                pidfile=self.root / "pgbouncer.pid",
            )
        )
        self.process = subprocess.Popen(
            _as_postgres([PGBOUNCER, str(ini)]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        pidfile = self.root / "pgbouncer.pid"
        if pidfile.exists():
            # The daemon's own pid: runuser would not pass a signal on to it.
            subprocess.run(["kill", "-INT", pidfile.read_text().strip()], check=False)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
