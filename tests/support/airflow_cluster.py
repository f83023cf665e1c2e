"""A throwaway real Airflow 3 for the tests: separate processes, a real executor.

``api-server --apps execution`` (the Task Execution API the workers report to: no UI, no
public REST API), ``scheduler``, ``dag-processor``, ``triggerer`` (the landing sensor
defers to it) and, with the CeleryExecutor, one ``celery worker`` on a throwaway Redis
broker (:mod:`tests.support.redis_local`).  Every server binds the loopback, on free ports;
the task-log servers are not started (``--skip-serve-logs``: every process shares the log
folder).  The metadata database is SQLite under the cluster's folder; the tests read it
directly (``sqlite3``), so the test process never imports Airflow's configuration.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: The session's migrated metadata DB with the pools, copied before any test used it
#: (``tests/dags/conftest.py``): a cluster starts from a copy instead of migrating.
PRISTINE_DB = "airflow.pristine.db"
BIN = Path(sys.executable).parent


def snapshot_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (its write-ahead log included)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _hex_address(hexed: str) -> str:
    """``0100007F`` -> ``127.0.0.1`` (and IPv6 ``::``/``::1``) from /proc/net/tcp*."""
    if len(hexed) == 8:
        return ".".join(str(b) for b in reversed(bytes.fromhex(hexed)))
    raw = b"".join(bytes.fromhex(hexed[i : i + 8])[::-1] for i in range(0, 32, 8))
    return str(ipaddress.IPv6Address(raw))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Component:
    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    stop_seconds: float | None = None


@dataclass
class AirflowCluster:
    """``start()`` the components, ``airflow(...)`` the CLI, ``query(...)`` the metadata DB,
    ``stop()`` everything (SIGTERM, then SIGKILL after ``stop_timeout`` s)."""

    yidai_env: Mapping[str, str]
    executor: str = "CeleryExecutor"
    broker_url: str | None = None
    result_backend: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="yidai-airflow-")))
    api_port: int = field(default_factory=_free_port)
    worker_log_port: int = field(default_factory=_free_port)
    trigger_log_port: int = field(default_factory=_free_port)
    components: list[Component] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def environ(self) -> dict[str, str]:
        """The environment of every Airflow process (and of the tasks they run)."""
        scrubbed = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "YIDAI_"))}
        env = {
            **scrubbed,
            **self.yidai_env,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                f"http://127.0.0.1:{self.api_port}/execution/"
            ),
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.root / "logs"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            **self.extra_env,
        }
        if self.broker_url:
            env["AIRFLOW__CELERY__BROKER_URL"] = self.broker_url
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = self.result_backend or self.broker_url
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "2"
            env["AIRFLOW__CELERY__WORKER_ENABLE_REMOTE_CONTROL"] = "False"
        return env

    def _secret(self, name: str) -> str:
        path = self.root / f".{name}"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text()

    # ------------------------------------------------------------------ processes
    def airflow(self, *args: str, timeout: float = 120) -> str:
        """Run ``airflow ARGS`` (the CLI on the metadata DB); its stdout; raise on failure."""
        done = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.environ(), capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)}: {done.stderr[-3000:]}")
        return done.stdout

    def begin_setup(self) -> subprocess.Popen[str]:
        """Start migrating the metadata DB and creating the warehouse pool
        (``yidai pipeline setup``) in the background; :meth:`finish_setup` waits for it."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._setup = subprocess.Popen(
            [str(BIN / "yidai"), "pipeline", "setup"], env=self.environ(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        return self._setup

    def use_database(self, migrated: Path) -> None:
        """Start from a copy of an already migrated metadata DB (with the pools) instead of
        :meth:`begin_setup`."""
        self.home.mkdir(parents=True, exist_ok=True)
        snapshot_sqlite(migrated, self.db_path)

    def finish_setup(self, timeout_s: float = 300) -> None:
        if getattr(self, "_setup", None) is None:
            return
        output, _ = self._setup.communicate(timeout=timeout_s)
        if self._setup.returncode != 0:
            log = (self.home / "setup.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"yidai pipeline setup failed: {output[-2000:]} {log}")

    def start(self, *, with_worker: bool = True) -> AirflowCluster:
        """Start every component; wait until the execution API answers."""
        port = str(self.api_port)
        specs = [
            ("api-server", ["api-server", "--apps", "execution", "-H", "127.0.0.1", "-p", port,
                            "-w", "1"]),
            ("scheduler", ["scheduler", "--skip-serve-logs"]),
            ("dag-processor", ["dag-processor"]),
            ("triggerer", ["triggerer", "--skip-serve-logs"]),
        ]  # fmt: skip
        if with_worker and self.executor == "CeleryExecutor":
            specs.append(
                ("celery-worker", ["celery", "worker", "--skip-serve-logs", "-c", "2",
                                   "--without-gossip", "--without-mingle"])
            )  # fmt: skip
        (self.root / "processes").mkdir(exist_ok=True)
        for name, args in specs:
            log = self.root / "processes" / f"{name}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    [str(BIN / "airflow"), *args], env=self.environ(), stdout=sink,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            self.components.append(Component(name, args, process, log))
        self._wait_http(f"http://127.0.0.1:{port}/execution/health", 90)
        return self

    def _wait_http(self, url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"{url} did not answer in {timeout_s} s:\n{self.tails()}")

    def check_alive(self) -> None:
        """Raise naming a component that exited (with the end of its log)."""
        for c in self.components:
            if c.process is not None and c.process.poll() is not None and c.stop_seconds is None:
                code = c.process.returncode
                raise RuntimeError(f"airflow {c.name} exited ({code}):\n{self.tails()}")

    def tails(self, chars: int = 2500) -> str:
        """The end of every component's log (for failure messages)."""
        parts = []
        for c in self.components:
            if c.log is not None and c.log.exists():
                parts.append(f"--- {c.name}\n{c.log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self, stop_timeout: float = 40.0) -> dict[str, float]:
        """SIGTERM every component (workers first), SIGKILL what is left after
        ``stop_timeout`` s; the seconds each took to exit (``inf``: killed)."""
        for c in reversed(self.components):
            if c.process is not None and c.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.process.pid, signal.SIGTERM)
        started = time.monotonic()
        for c in reversed(self.components):
            if c.process is None:
                continue
            try:
                c.process.wait(timeout=max(0.1, stop_timeout - (time.monotonic() - started)))
                c.stop_seconds = time.monotonic() - started
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.process.pid, signal.SIGKILL)
                c.process.wait(timeout=10)
                c.stop_seconds = float("inf")
            # children left in the process group (task supervisors, celery pool)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.process.pid, signal.SIGKILL)
        return {c.name: c.stop_seconds or 0.0 for c in self.components}

    def listening(self) -> dict[int, list[str]]:
        """The addresses listening (TCP) on the API and log-server ports, from /proc/net."""
        ports = {self.api_port: [], self.worker_log_port: [], self.trigger_log_port: []}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as lines:
                for line in list(lines)[1:]:
                    local, state = line.split()[1], line.split()[3]
                    address, port = local.rsplit(":", 1)
                    if state == "0A" and int(port, 16) in ports:
                        ports[int(port, 16)].append(_hex_address(address))
        return ports

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ metadata DB
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query on the metadata DB, as dicts."""
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            con.row_factory = sqlite3.Row
            return [dict(row) for row in con.execute(sql, params).fetchall()]
        finally:
            con.close()

    def wait_for(self, what: str, predicate: Any, timeout_s: float, poll_s: float = 1.0) -> Any:
        """Poll ``predicate()`` until it returns something truthy; raise after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            with contextlib.suppress(sqlite3.OperationalError):
                value = predicate()
                if value:
                    return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s} s waiting for {what}:\n{self.tails()}"
                )
            time.sleep(poll_s)

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM dag_run WHERE dag_id = ? ORDER BY id", (dag_id,))
        for row in rows:
            if isinstance(row.get("conf"), (str, bytes)):
                with contextlib.suppress(ValueError):
                    row["conf"] = json.loads(row["conf"])
        return rows

    def task_instances(self, dag_id: str | None = None) -> list[dict[str, Any]]:
        if dag_id is None:
            return self.query("SELECT * FROM task_instance")
        return self.query("SELECT * FROM task_instance WHERE dag_id = ?", (dag_id,))
