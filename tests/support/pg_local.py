"""A throwaway local PostgreSQL cluster for the tests and benchmarks of the audit store.

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``, installed by
``scripts/install-postgres.sh``), a temporary data directory, a free loopback port, no
durability (``fsync=off``: nothing in it outlives the run).  PostgreSQL refuses to run as
root, so as root the cluster is owned and run by the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

INSTALL_HINT = "run `bash scripts/install-postgres.sh` (apt-get install postgresql)"


def server_bin(root: Path = Path("/usr/lib/postgresql")) -> Path:
    """The newest installed ``<root>/<version>/bin`` with initdb and pg_ctl."""
    found = sorted(
        (Path(p).parent for p in glob.glob(f"{root}/*/bin/pg_ctl")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found or not (found[-1] / "initdb").exists():
        raise RuntimeError(f"PostgreSQL server binaries not found under {root}: {INSTALL_HINT}")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """``start()`` a cluster, ``new_database()`` per test, ``stop()`` at the end."""

    def __init__(self) -> None:
        self.bin = server_bin()
        self.as_root = os.geteuid() == 0
        # as root under /tmp: the postgres user must reach it (TMPDIR may be root-only)
        self.root = Path(tempfile.mkdtemp(prefix="yidai-pg-", dir="/tmp" if self.as_root else None))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self._run_as: list[str] = []
        if self.as_root:
            if shutil.which("runuser") is None:
                raise RuntimeError("runuser is needed to run PostgreSQL as the postgres user")
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError(f"no 'postgres' system user: {INSTALL_HINT}") from exc
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        """Run a server program (as the postgres user when root); raise with its output."""
        done = subprocess.run(
            [*self._run_as, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr or done.stdout}")

    def start(self) -> PostgresCluster:
        """initdb (trust authentication, loopback only) and start the server; wait for it."""
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.root} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        """The URL of a database of the cluster (the cluster's user, no password)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and remove the cluster's folder."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
