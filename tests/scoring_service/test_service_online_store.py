"""The service on the Redis online store: decisions, switching versions, an unreachable store,
and two replicas (separate ``yidai serve`` processes) on one Redis and one PostgreSQL."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import features
from features.online.redis_store import RedisStore
from scoring_service.security import SCOPES, create_key
from tests.support.pg_local import PostgresCluster
from tests.support.redis_local import RedisServer
from tests.support.sandbox import AS_OF, Sandbox
from yidai.audit import AuditStore
from yidai.core.settings import Settings

from .conftest import POLICIES, publish_limits, settings_at, wait_until
from .test_service_reliability import _wait_ready, _yidai_serve


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def _redis_settings(sandbox_home: Path, tmp_path: Path, url: str, **overrides: object) -> Settings:
    """Per-test settings whose snapshots are published to the Redis at ``url``."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    serving = tmp_path / "serving"
    serving.mkdir()
    publish_limits(serving, [], "v-empty")
    store = RedisStore(url)
    store.client.flushdb()
    warehouse = sandbox_home / "sandbox" / "warehouse.duckdb"
    features.publish_snapshot(warehouse, serving, AS_OF, store=store)
    return settings_at(sandbox_home, tmp_path, serving_dir=serving, online_store=url, **overrides)


def _key(settings: Settings) -> str:
    assert settings.api_keys_file is not None
    key, _ = create_key(settings.api_keys_file, "ops_console", list(SCOPES))
    return key


def _decide(client: Any, key: str, sandbox: Sandbox, audit_url: str, i: int = 0) -> dict[str, Any]:
    """A personal-credit and a payment decision; their answers and stored snapshots."""
    headers = {"X-API-Key": key}
    credit = client.post(
        "/v1/decisions/personal-credit",
        json={"customer_id": sandbox.entities["personal"][i], "requested_amount": 3000.0},
        headers=headers,
    )
    pay = client.post(
        "/v1/payments/risk",
        json={"payer_id": sandbox.entities["payment"][i], "amount": 120.0, "channel": "app",
              "device_id": "D1", "counterpart_id": "P9", "ts": "2026-07-01T10:00:00"},
        headers=headers,
    )  # fmt: skip
    out: dict[str, Any] = {"credit": credit, "pay": pay}
    audit = AuditStore(audit_url)
    try:
        for name, r in (("credit", credit), ("pay", pay)):
            if r.status_code == 200:
                stored = audit.get_decision(r.json()["decision_id"])
                assert stored is not None
                out[f"{name}_snapshot"] = stored["record"]["snapshot"]
    finally:
        audit.close()
    return out


def test_redis_store_decides_switches_without_restart_and_fails_closed(
    sandbox: Sandbox,
    sandbox_home: Path,
    tmp_path: Path,
    make_client: Callable[..., TestClient],
) -> None:
    own = RedisServer().start()  # stopped below: the store becomes unreachable
    try:
        url = own.url(0)
        settings = _redis_settings(sandbox_home, tmp_path, url)
        store = RedisStore(url)
        key = _key(settings)
        client = make_client(settings, wait_ready=False)

        def products() -> dict[str, Any]:
            report: dict[str, Any] = client.get("/readyz", headers={"X-API-Key": key}).json()
            return dict(report["products"])

        wait_until(
            lambda: all(products()[p]["ready"] for p in ("personal", "payment")),
            what="personal and payment ready",
        )
        first = _decide(client, key, sandbox, settings.audit_url)
        assert first["credit"].status_code == 200, first["credit"].text
        assert first["pay"].status_code == 200, first["pay"].text
        personal = features.CREDIT_FEATURE_SETS["personal"]
        assert first["credit_snapshot"] == store.current(personal)["snapshot_id"]  # type: ignore[index]
        pay_live = store.current(features.FRAUD_FEATURE_SET)["snapshot_id"]  # type: ignore[index]
        assert first["pay_snapshot"] == pay_live

        # a new version: the service switches without a restart, every decision names one
        warehouse = sandbox_home / "sandbox" / "warehouse.duckdb"
        out = features.publish_snapshot(warehouse, settings.serving, AS_OF, store=store)
        new_personal = out[personal].name
        wait_until(
            lambda: products()["personal"]["snapshot"] == new_personal,
            what="switch to the new snapshot",
        )
        second = _decide(client, key, sandbox, settings.audit_url, 1)
        assert second["credit_snapshot"] == new_personal
        assert second["credit"].json()["decision"] in {"approve", "refer", "decline"}

        # the store goes away: 503 with the reason for the products that need it
        own.stop()
        third = _decide(client, key, sandbox, settings.audit_url, 2)
        for name in ("credit", "pay"):
            r = third[name]
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["reason_code"] == "ONLINE_STORE_UNAVAILABLE", body
            assert "unreachable" in body["detail"] or "unreachable" in r.text
    finally:
        own.stop()


def test_one_redis_round_trip_per_decision(
    sandbox: Sandbox,
    sandbox_home: Path,
    tmp_path: Path,
    redis_server: RedisServer,
    make_client: Callable[..., TestClient],
) -> None:
    """A personal-credit and a payment decision each read Redis in one round trip (the
    server's count of processed reads, with the service's reload loop idle)."""
    url = redis_server.url(6)
    settings = _redis_settings(sandbox_home, tmp_path, url, service_reload_seconds=3600)
    key = _key(settings)
    client = make_client(settings, wait_ready=False)
    wait_until(
        lambda: all(
            client.get("/readyz", headers={"X-API-Key": key}).json()["products"][p]["ready"]
            for p in ("personal", "payment")
        ),
        what="personal and payment ready",
    )
    probe = RedisStore(url).client

    def reads() -> int:
        return int(probe.info("stats")["total_reads_processed"])

    def decide(i: int, product: str) -> None:
        d = _decide_one(client, key, sandbox, i, product)
        assert d.status_code == 200, d.text

    for i in range(2):  # warm: the service's connection is open
        decide(i, "credit")
        decide(i, "pay")
    before = reads()
    idle = reads() - before  # the probe's own INFO
    n = 5
    for product in ("credit", "pay"):
        start = reads()
        for i in range(n):
            decide(i, product)
        assert reads() - start - idle == n, product


def _decide_one(client: Any, key: str, sandbox: Sandbox, i: int, product: str) -> Any:
    if product == "credit":
        body: dict[str, Any] = {
            "customer_id": sandbox.entities["personal"][i],
            "requested_amount": 3000.0,
        }
        return client.post("/v1/decisions/personal-credit", json=body, headers={"X-API-Key": key})
    body = {"payer_id": sandbox.entities["payment"][i], "amount": 120.0, "channel": "app",
            "device_id": "D1", "counterpart_id": "P9", "ts": f"2026-07-01T10:0{i}:00"}  # fmt: skip
    return client.post("/v1/payments/risk", json=body, headers={"X-API-Key": key})


CREDIT_KEYS = ("decision", "pd", "score", "grade", "limit", "model_version", "policy_version")
PAY_KEYS = ("action", "fraud_probability", "score", "model_version", "arm")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_replicas_on_one_redis_and_one_postgres_answer_identically(
    sandbox: Sandbox,
    sandbox_home: Path,
    tmp_path: Path,
    redis_server: RedisServer,
    postgres: PostgresCluster,
) -> None:
    url = redis_server.url(5)
    base = _redis_settings(sandbox_home, tmp_path, url)
    settings = settings_at(
        sandbox_home,
        tmp_path,
        serving_dir=base.serving,
        online_store=url,
        audit_db_url=postgres.new_database(),
    )
    key = _key(settings)
    ports = [_free_port(), _free_port()]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    answers: list[list[dict[str, Any]]] = []
    with (
        _yidai_serve(settings, tmp_path / "a", ports[0]) as a,
        _yidai_serve(settings, tmp_path / "b", ports[1]) as b,
    ):
        for port, proc in zip(ports, (a, b), strict=True):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                _wait_ready(client, proc, tmp_path)
                got = []
                for i in range(4):
                    d = _decide(client, key, sandbox, settings.audit_url, i)
                    assert d["credit"].status_code == 200, d["credit"].text
                    assert d["pay"].status_code == 200, d["pay"].text
                    credit, pay = d["credit"].json(), d["pay"].json()
                    got.append(
                        {
                            **{k: credit[k] for k in CREDIT_KEYS},
                            **{f"pay_{k}": pay[k] for k in PAY_KEYS},
                            "snapshots": (d["credit_snapshot"], d["pay_snapshot"]),
                        }
                    )
                answers.append(got)
    assert answers[0] == answers[1]
    assert len({a["snapshots"] for a in answers[0]}) == 1
