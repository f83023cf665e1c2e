"""The audit store holds no recoverable identifier: request fingerprints are HMAC-SHA256 under
a secret key, so hashing candidate requests (the attack that recovered card tokens from the
old unsalted SHA-256) finds nothing, while idempotency conflicts are still detected, across
restarts too."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from scoring_service.decide import request_hash
from tests.support.sandbox import Sandbox
from yidai.audit import (
    AuditStore,
    DecisionRow,
    IdempotencyConflict,
    load_hash_key,
    load_previous_hash_keys,
)
from yidai.audit.decision_log import INSERT_DECISION
from yidai.core.settings import Settings

HASH_KEY = "test-only-audit-hash-key-0123456789"


def _stored(url: str) -> list[tuple[str, dict[str, Any]]]:
    """Every stored (request_hash, record) of the decisions table."""
    store = AuditStore(url)
    try:
        with store._read() as tx:
            rows = tx.rows("SELECT request_hash, record FROM decisions")
    finally:
        store.close()
    return [(str(h), json.loads(record)) for h, record in rows]


def test_card_tokens_are_not_recoverable_by_hashing_candidates(
    sandbox: Sandbox,
    service_settings: Settings,
    keys: Any,
    make_client: Callable[[Settings], TestClient],
) -> None:
    settings = service_settings.model_copy(update={"audit_hash_key": SecretStr(HASH_KEY)})
    client = make_client(settings)
    candidates = [f"CARD-{i:04d}" for i in range(200)]  # the attacker's guesses, incl. the truth
    payers = sandbox.entities["payment"]
    for i in range(20):
        answer = client.post(
            "/v1/payments/risk",
            json={"payer_id": payers[i % len(payers)], "amount": 50.0 + i, "channel": "app",
                  "ts": f"2026-07-01T10:{i:02d}:00", "device_id": f"D-{i}",
                  "card_token": candidates[i * 7]},
            headers={"X-API-Key": keys.all, "Idempotency-Key": f"pay-{i}"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
    stored = _stored(settings.audit_url)
    assert len(stored) == 20
    digests = {h for h, _ in stored}
    recovered = 0
    for _, record in stored:
        request = record["request"]
        assert "card_token" not in request
        for token in candidates:  # the attack: the old unsalted digest of each candidate
            if request_hash("payment", {**request, "card_token": token}) in digests:
                recovered += 1
    assert recovered == 0
    # What is stored is the HMAC-SHA256, under the configured key, of the request fingerprint.
    for digest, record in stored:
        i = int(record["request"]["amount"]) - 50
        request = {**record["request"], "card_token": candidates[i * 7]}
        fingerprint = request_hash("payment", request)
        keyed = hmac.new(HASH_KEY.encode(), fingerprint.encode(), hashlib.sha256).hexdigest()
        assert digest == keyed
    # The same key with another card is still refused as a different request.
    reused = client.post(
        "/v1/payments/risk",
        json={**stored[0][1]["request"], "card_token": "CARD-9999"},
        headers={"X-API-Key": keys.all, "Idempotency-Key": "pay-0"},
    )
    assert reused.status_code == 409, reused.text


def _row(decision_id: str, fingerprint: str) -> DecisionRow:
    return DecisionRow(
        decision_id=decision_id, module="m", idempotency_key="k1", request_hash=fingerprint,
        product="sme", entity_id="S1", outcome="approve", arm="champion", model_version=None,
        policy_version=None, response={"decision_id": decision_id}, record={},
    )  # fmt: skip


def test_the_generated_key_is_private_stable_and_detects_conflicts_after_a_restart(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, audit_db_url=f"sqlite:///{tmp_path / 'audit.db'}")
    key = load_hash_key(settings)
    path = settings.audit_hash_key_file
    assert path is not None and path.parent == tmp_path / "service"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 32
    assert load_hash_key(settings) == key  # read back, not regenerated
    store = AuditStore(settings.audit_url, hash_key=key)
    store.record_decision(_row("d1", "fingerprint-a"))
    store.close()
    restarted = AuditStore(settings.audit_url, hash_key=load_hash_key(settings))
    try:
        assert restarted.find_idempotent("m", "k1", "fingerprint-a") == '{"decision_id":"d1"}'
        with pytest.raises(IdempotencyConflict):
            restarted.find_idempotent("m", "k1", "fingerprint-b")
        with restarted._read() as tx:
            (stored,) = tx.rows("SELECT request_hash FROM decisions")[0]
        assert stored != hashlib.sha256(b"fingerprint-a").hexdigest()
        assert stored == hmac.new(key, b"fingerprint-a", hashlib.sha256).hexdigest()
    finally:
        restarted.close()
    configured = Settings(home=tmp_path, audit_hash_key=SecretStr(HASH_KEY))
    assert load_hash_key(configured) == HASH_KEY.encode()  # the configured secret wins


def test_a_retry_of_a_row_stored_before_keying_still_replays(tmp_path: Path) -> None:
    """Rows are append-only, so rows written with the old plain fingerprint stay: a retry of
    one (same key, same request) across the upgrade replays it, another request conflicts."""
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}", hash_key=b"k" * 32)
    try:
        with store._write() as tx:
            tx.rows(
                INSERT_DECISION,
                {"decision_id": "old", "created_at": "2026-07-01T00:00:00+00:00", "module": "m",
                 "idempotency_key": "k1", "request_hash": "plain-fingerprint", "product": "sme",
                 "entity_id": "S1", "outcome": "approve", "arm": "champion",
                 "model_version": None, "policy_version": None,
                 "response": '{"decision_id":"old"}', "record": "{}"},
            )  # fmt: skip
        assert store.find_idempotent("m", "k1", "plain-fingerprint") == '{"decision_id":"old"}'
        with pytest.raises(IdempotencyConflict):
            store.find_idempotent("m", "k1", "another-fingerprint")
    finally:
        store.close()


def test_a_rotated_key_still_matches_as_the_previous_key(tmp_path: Path) -> None:
    """Rotation: the old key moves to ``audit_hash_key_previous``; a retry of a request
    stored under it replays, a different request still conflicts, new rows use the new key."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    old, new = "old-audit-hash-key-0123456789", "new-audit-hash-key-9876543210"
    before = AuditStore(url, hash_key=old.encode())
    before.record_decision(_row("d1", "fingerprint-a"))
    before.close()
    rotated = Settings(
        home=tmp_path, audit_hash_key=SecretStr(new), audit_hash_key_previous=SecretStr(old)
    )
    after = AuditStore(
        url,
        hash_key=load_hash_key(rotated),
        previous_hash_keys=load_previous_hash_keys(rotated),
    )
    try:
        assert after.find_idempotent("m", "k1", "fingerprint-a") == '{"decision_id":"d1"}'
        with pytest.raises(IdempotencyConflict):
            after.find_idempotent("m", "k1", "fingerprint-b")
        after.record_decision(
            DecisionRow(**{**_row("d2", "fingerprint-c").__dict__, "idempotency_key": "k2"})
        )
        with after._read() as tx:
            (stored,) = tx.rows("SELECT request_hash FROM decisions WHERE decision_id = 'd2'")[0]
        assert stored == hmac.new(new.encode(), b"fingerprint-c", hashlib.sha256).hexdigest()
    finally:
        after.close()
    without_previous = AuditStore(url, hash_key=new.encode())
    try:
        with pytest.raises(IdempotencyConflict):  # what the previous key is there for
            without_previous.find_idempotent("m", "k1", "fingerprint-a")
    finally:
        without_previous.close()
