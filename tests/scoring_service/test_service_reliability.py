"""Reliability under load: ``yidai serve`` (a real uvicorn subprocess on a loopback port) takes
a few thousand payment-risk and credit decisions at concurrency 16, is killed with SIGKILL
midway, restarts on the same audit store, and every request without an answer is retried with
its own Idempotency-Key until it gets one.  Then every answered request has exactly one audit
row (nothing lost, nothing decided twice) and replays equal the answers sent before the kill.
On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from scoring_service.security import create_key
from tests.support.sandbox import Sandbox, service_env
from yidai.audit import AuditStore
from yidai.core.settings import Settings

from .conftest import _free_port, wait_until

REQUESTS = 2000
CONCURRENCY = 16
KILL_AFTER = REQUESTS // 2  # answers before the SIGKILL
RETRY_ROUNDS = 5


@dataclass
class Call:
    """One decision request and the first 2xx answer it got (None: none yet)."""

    path: str
    body: dict[str, Any]
    key: str
    answer: str | None = None
    before_kill: bool = False


def _calls(sandbox: Sandbox) -> list[Call]:
    payers, people = sandbox.entities["payment"], sandbox.entities["personal"]
    calls = []
    for i in range(REQUESTS):
        if i % 3 == 2:
            body: dict[str, Any] = {
                "customer_id": people[i % len(people)],
                "requested_amount": 1000 + 10 * i,
            }
            calls.append(Call("/v1/decisions/personal-credit", body, f"credit-{i}"))
        else:
            body = {
                "payer_id": payers[i % len(payers)], "amount": 20.0 + i % 500, "channel": "app",
                "ts": f"2026-07-01T{8 + i % 12:02d}:{i % 60:02d}:00", "device_id": f"D-{i % 40}",
                "counterpart_id": f"C-{i % 90}", "card_token": f"CARD-{i:06d}",
            }  # fmt: skip
            calls.append(Call("/v1/payments/risk", body, f"pay-{i}"))
    return calls


@contextmanager
def _yidai_serve(
    settings: Settings, tmp_path: Path, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """``yidai serve`` in its own process group, its environment from ``settings`` only."""
    env = service_env(settings, tmp_path / "audit_hash.key")
    log = open(tmp_path / "serve.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "yidai"), "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        log.close()


def _wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes], tmp_path: Path) -> None:
    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
        try:
            return client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, what="yidai serve ready", timeout=90)


def _send(client: httpx.Client, api_key: str, call: Call) -> str | None:
    """The 2xx answer to ``call``, or None if it got no response (connection lost, refused)."""
    try:
        response = client.post(
            call.path, json=call.body, headers={"X-API-Key": api_key, "Idempotency-Key": call.key}
        )
    except httpx.TransportError:
        return None
    if response.status_code == 503:  # not ready yet (a restart): retried like a lost call
        return None
    assert response.status_code == 200, (call.key, response.status_code, response.text)
    return response.text


def _rows(url: str) -> int:
    """Decisions of the load test in the audit store."""
    store = AuditStore(url)
    try:
        with store._read() as tx:
            return int(tx.rows("SELECT COUNT(*) FROM decisions WHERE module = 'load_test'")[0][0])
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_no_decision_lost_or_doubled_across_a_sigkill_under_load(
    backend: str,
    sandbox: Sandbox,
    service_settings: Settings,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    settings = service_settings
    if backend == "postgres":
        url = request.getfixturevalue("postgres").new_database()
        settings = settings.model_copy(update={"audit_db_url": url})
    assert settings.api_keys_file is not None
    api_key, _ = create_key(
        settings.api_keys_file, "load_test", ["personal-credit", "payment-risk"]
    )
    calls = _calls(sandbox)
    answered = 0
    lock = threading.Lock()
    half_answered = threading.Event()
    port = _free_port()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as client:
        with _yidai_serve(settings, tmp_path, port) as first:
            _wait_ready(client, first, tmp_path)

            def first_try(call: Call) -> None:
                nonlocal answered
                call.answer = _send(client, api_key, call)
                if call.answer is not None:
                    with lock:
                        call.before_kill = not half_answered.is_set()
                        answered += 1
                        if answered == KILL_AFTER:
                            half_answered.set()

            with ThreadPoolExecutor(CONCURRENCY) as pool:
                futures = [pool.submit(first_try, call) for call in calls]
                assert half_answered.wait(timeout=120), "too few answers before the kill"
                os.killpg(first.pid, signal.SIGKILL)  # the whole service, mid-load
                first.wait(timeout=20)
                for future in futures:
                    future.result()
        unanswered = len([c for c in calls if c.answer is None])
        assert 0 < unanswered <= REQUESTS - KILL_AFTER
        # decided and stored, but the answer was lost with the process: a retry replays it
        committed_unanswered = _rows(settings.audit_url) - (REQUESTS - unanswered)
        assert 0 <= committed_unanswered <= CONCURRENCY

        with _yidai_serve(settings, tmp_path, port) as second:
            _wait_ready(client, second, tmp_path)
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                for _ in range(RETRY_ROUNDS):  # the same keys, until each has an answer
                    pending = [c for c in calls if c.answer is None]
                    if not pending:
                        break
                    for call, sent in zip(
                        pending, pool.map(lambda c: _send(client, api_key, c), pending), strict=True
                    ):
                        call.answer = sent
                assert all(c.answer is not None for c in calls), "calls never answered"
                # Replays of answers sent before the kill: the very same response.
                early = [c for c in calls if c.before_kill]
                replays = list(pool.map(lambda c: _send(client, api_key, c), early))
            assert replays == [c.answer for c in early]

    store = AuditStore(settings.audit_url)
    try:
        with store._read() as tx:
            rows = tx.rows(
                "SELECT idempotency_key, decision_id, response FROM decisions"
                " WHERE module = 'load_test'"
            )
            events = tx.rows("SELECT COUNT(*), COUNT(DISTINCT decision_id) FROM payment_events")
    finally:
        store.close()
    by_key: dict[str, list[tuple[str, str]]] = {}
    for key, decision_id, response in rows:
        by_key.setdefault(key, []).append((decision_id, response))
    assert len(rows) == REQUESTS and sorted(by_key) == sorted(c.key for c in calls)
    for call in calls:
        ((decision_id, response),) = by_key[call.key]  # exactly one row per answered request
        assert call.answer is not None
        assert json.loads(call.answer)["decision_id"] == decision_id
        assert json.loads(response) == json.loads(call.answer)
    payments = sum(c.path == "/v1/payments/risk" for c in calls)
    assert events[0] == (payments, payments)  # one velocity event per payment decision
    print(
        f"{backend}: {REQUESTS} requests at concurrency {CONCURRENCY}, 1 SIGKILL after "
        f"{KILL_AFTER} answers, {unanswered} retried after the restart "
        f"({committed_unanswered} of them stored before the kill, replayed), "
        f"{len(early)} replays equal, {len(rows)} audit rows"
    )
