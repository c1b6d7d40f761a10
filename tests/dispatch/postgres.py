"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb in a temp folder, a server on a Unix socket there,
one fresh database per caller, everything removed at stop. Never the system service.

    cluster = PostgresCluster.start()          # raises PostgresUnavailable when it cannot run here
    url = cluster.new_database()               # "postgresql://orch@/db1?host=DIR&port=PORT"
    cluster.stop()

initdb refuses to run as root, so as root the folder is handed to the `postgres` user and the binaries run through
`runuser -u postgres --` (Debian's postgresql package makes that user; ../shared/TESTING.md).
"""
from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from typing import Dict, List, Optional

USER = "orch"
# Tests need no durability from the server: a crash of it is never tested, and fsync off makes CREATE DATABASE
# and commits fast on a loaded CI box. A benchmark that reports PostgreSQL's real cost passes durable=True.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresUnavailable(Exception):
    """PostgreSQL cannot run here (no binaries, no psycopg, no `postgres` user as root): callers skip, saying why."""


def find_bin_dir() -> Optional[str]:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))
    def version(path: str) -> float:
        try:
            return float(path.split(os.sep)[-2])
        except ValueError:
            return 0.0
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if os.path.exists(os.path.join(folder, "initdb")) and os.path.exists(os.path.join(folder, "pg_ctl")):
            return folder
    return None


def unavailable_reason() -> Optional[str]:
    """Why a cluster cannot start here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if find_bin_dir() is None:
        return "PostgreSQL's initdb/pg_ctl not found (apt-get install -y postgresql)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root without runuser: initdb refuses root"
        try:
            import pwd
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
    return None


def _free_port() -> int:
    # listen_addresses is empty (Unix socket only): the port only names the socket file, but a free TCP port keeps
    # the name clear of any other server's socket anyway.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self, root: str, port: int, bin_dir: str, as_postgres: bool) -> None:
        self.root = root  # holds data/, the socket and server.log
        self.port = port
        self.bin_dir = bin_dir
        self._as_postgres = as_postgres
        self._count = 0
        self._lock = threading.Lock()
        self._stopped = False

    # -- life ------------------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, durable: bool = False, settings: Optional[Dict[str, str]] = None) -> "PostgresCluster":
        reason = unavailable_reason()
        if reason:
            raise PostgresUnavailable(reason)
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        # /tmp, not pytest's deep tmp_path: a Unix socket's path must stay under about 100 characters.
        root = tempfile.mkdtemp(prefix="orch-pg-")
        as_postgres = os.geteuid() == 0
        if as_postgres:
            shutil.chown(root, user="postgres", group="postgres")
        cluster = cls(root, _free_port(), bin_dir, as_postgres)
        options: Dict[str, str] = {} if durable else dict(FAST_SETTINGS)
        options.update(settings or {})
        try:
            cluster._run("initdb", "-D", cluster.data, "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8")
            extra = " ".join(f"-c {k}={v}" for k, v in options.items())
            cluster._run("pg_ctl", "-D", cluster.data, "-l", cluster.log, "-w", "-t", "60", "-o",
                         f"-p {cluster.port} -k {root} -c listen_addresses='' {extra}", "start")
        except BaseException:
            cluster.stop()
            raise
        atexit.register(cluster.stop)  # a test run that dies still stops its server
        return cluster

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "60", "stop")
            except RuntimeError:
                pass  # the folder goes anyway; a stray server dies with its socket folder's removal at worst
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def data(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def log(self) -> str:
        return os.path.join(self.root, "server.log")

    def _run(self, program: str, *args: str) -> None:
        command: List[str] = [os.path.join(self.bin_dir, program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = ""
            if os.path.exists(self.log):
                with open(self.log, encoding="utf-8", errors="replace") as fh:
                    log = fh.read()[-3000:]
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")

    # -- databases -------------------------------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@/{database}?host={self.root}&port={self.port}"

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        with self._lock:
            self._count += 1
            name = f"{prefix}{self._count}"
        with psycopg.connect(host=self.root, port=self.port, user=USER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
