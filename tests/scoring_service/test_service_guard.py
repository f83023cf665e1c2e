"""Hostile connections against the real ``yidai serve`` (uvicorn, loopback): the key is
checked before the body is read, bodies are capped, and slow headers and bodies time out."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scoring_service.security import create_key
from tests.support.sandbox import Sandbox

from .conftest import POLICIES, _free_port, settings_at, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PATH = "/v1/payments/risk"


@dataclass
class Served:
    port: int
    key: str


@pytest.fixture(scope="module")
def served(
    sandbox: Sandbox, sandbox_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``yidai serve`` in a subprocess, with 1 s header and body deadlines."""
    tmp = tmp_path_factory.mktemp("guard")
    shutil.copytree(POLICIES, tmp / "policies")
    settings = settings_at(sandbox_home, tmp)
    assert settings.api_keys_file is not None
    key, _ = create_key(settings.api_keys_file, "hostile_test", ["payment-risk"])
    port = _free_port()
    env = {
        **os.environ,
        "YIDAI_HOME": str(settings.home),
        "YIDAI_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "YIDAI_AUDIT_DB_URL": settings.audit_url,
        "YIDAI_API_KEYS_FILE": str(settings.api_keys_file),
        "YIDAI_POLICY_DIR": str(settings.policies),
        "YIDAI_SERVING_DIR": str(settings.serving),
        "YIDAI_HEADER_TIMEOUT_SECONDS": "1",
        "YIDAI_BODY_TIMEOUT_SECONDS": "1",
    }
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "yidai.cli", "serve", "--port", str(port)],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _ready(port), what="yidai serve", timeout=120)
        yield Served(port, key)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _raw(port: int, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(head.encode() + body)
    return sock


def _status(sock: socket.socket) -> int:
    """The status of the response on ``sock`` (waits up to the socket's 15 s timeout)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closes ``sock`` before ``deadline`` (a monotonic time)."""
    try:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        return sock.recv(4096) == b""
    except (TimeoutError, ConnectionResetError):
        return False
    finally:
        sock.close()


def _head(length: int | None, key: str | None, chunked: bool = False) -> str:
    lines = [f"POST {PATH} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if key:
        lines.append(f"X-API-Key: {key}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return "\r\n".join(lines) + "\r\n\r\n"


def test_a_huge_body_without_a_key_is_refused_before_it_is_read(served: Served) -> None:
    # 300 MB announced, 10 bytes sent: an answer now proves the body was never waited for.
    sock = _raw(served.port, _head(300_000_000, None), b'{"payer_id')
    assert _status(sock) == 401
    sock = _raw(served.port, _head(300_000_000, "yd_000000000000_" + "x" * 40), b"{")
    assert _status(sock) == 401


def test_bodies_over_the_limit_are_refused(served: Served) -> None:
    sock = _raw(served.port, _head(300_000_000, served.key), b"{")
    assert _status(sock) == 413
    chunk = b"x" * 40_000
    chunks = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2 + b"0\r\n\r\n"
    assert _status(_raw(served.port, _head(None, served.key, chunked=True), chunks)) == 413
    big = httpx.post(
        f"http://127.0.0.1:{served.port}{PATH}",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"X-API-Key": served.key, "Content-Type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["reason_code"] == "BODY_TOO_LARGE"


def test_a_body_that_does_not_arrive_times_out(served: Served) -> None:
    sock = _raw(served.port, _head(100, served.key), b'{"payer_id": ')
    assert _status(sock) == 408


def test_slow_or_idle_connections_are_closed_and_the_service_keeps_answering(
    served: Served,
) -> None:
    partial = [_raw(served.port, f"POST {PATH} HTTP/1.1\r\nHost: 1") for _ in range(200)]
    idle = [socket.create_connection(("127.0.0.1", served.port), timeout=15) for _ in range(50)]
    deadline = time.monotonic() + 20  # the server's deadline is 1 s
    closed = [_closed_by_server(s, deadline) for s in partial + idle]
    assert all(closed), f"{closed.count(False)} of {len(closed)} connections still open"
    answer = httpx.post(
        f"http://127.0.0.1:{served.port}{PATH}",
        json={"payer_id": "P1", "amount": 50.0, "channel": "app"},
        headers={"X-API-Key": served.key},
    )
    assert answer.status_code == 200, answer.text
