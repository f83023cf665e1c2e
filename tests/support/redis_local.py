"""A throwaway local Redis server for the tests and benchmarks of the online store and the
Celery executor.

Debian's ``redis-server`` (installed by ``scripts/install-redis.sh``), a temporary folder, a
free loopback port, no persistence (nothing in it outlives the run).  ``YIDAI_TEST_REDIS_URL``
names a running server to use instead (its database is flushed by the tests that use it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "run `bash scripts/install-redis.sh` (apt-get install redis-server)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``start()`` a server on a free loopback port, ``url(db)`` per user, ``stop()`` at the end."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"redis-server not found: {INSTALL_HINT}")
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="yidai-redis-"))
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> RedisServer:
        """Start redis-server (loopback only, no RDB/AOF) and wait until it answers PING."""
        self._process = subprocess.Popen(
            [
                self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.root), "--save", "", "--appendonly", "no",
                "--protected-mode", "yes", "--databases", "64",
                "--logfile", str(self.root / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (self.root / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited at start: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout_s} s")

    def url(self, db: int = 0) -> str:
        """The URL of one of the server's numbered databases."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        shutil.rmtree(self.root, ignore_errors=True)
