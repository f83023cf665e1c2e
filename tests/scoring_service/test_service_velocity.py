"""Payment risk reads the payer's recent scored payments from the audit store: a burst raises
the intra-day velocity features and the fraud probability, and the online vector equals the
feature store's offline computation on the same prior events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from features import load_snapshot
from features.definitions import get_feature_set
from features.request import PAIR_FIELDS, prepare_history, request_features_batch
from tests.support.sandbox import MODELS, Sandbox
from yidai.audit import AuditStore
from yidai.core.settings import Settings

from .conftest import wait_until

START = dt.datetime(2026, 7, 1, 10, 0)


def _payment(payer: str, i: int, minutes: float) -> dict[str, Any]:
    """The i-th payment of a card-testing burst: small amounts, new payees, one device."""
    return {
        "payer_id": payer,
        "amount": round(1.0 + 0.5 * i, 2),
        "ts": (START + dt.timedelta(minutes=minutes)).isoformat(),
        "channel": "app",
        "device_id": "D-burst",
        "counterpart_id": f"T-burst-{i % 3}",
        "card_token": "tok-secret",
    }


def _offline_row(snapshot: Any, request: dict[str, Any], prior: list[dict[str, Any]]) -> np.ndarray:
    """``request``'s feature row on the offline (batch) path with ``prior`` as history."""
    fs = get_feature_set(snapshot.feature_set)
    payer = request["payer_id"]
    vectors = {
        "payer": snapshot.get(payer, "payer"),
        "counterpart": snapshot.get(request["counterpart_id"], "counterpart"),
        "merchant": None,
    }
    profiles: dict[str, np.ndarray] = {}
    for entity in fs.profile_entities:
        from features.request import profile_defaults

        vec = vectors.get(entity)
        vec = profile_defaults(fs, entity) if vec is None else vec
        for j, column in enumerate(fs.profile_columns(entity)):
            profiles[column] = np.asarray(vec[j : j + 1], np.float64)
    fields = {
        "payer_id": payer,
        "event_type": "payment",
        "ts": pd.Timestamp(request["ts"]).to_datetime64(),
        "amount": request["amount"],
        "counterpart_id": request["counterpart_id"],
        "merchant_id": None,
        "mcc": None,
        "entry_mode": None,
        "channel": request["channel"],
        "device_id": request["device_id"],
        "payment_type": "e_payment",
    }
    events = pd.DataFrame(
        {
            "payer_id": [payer] * len(prior),
            "ts": pd.to_datetime([e["ts"] for e in prior]),
            "amount": [e["amount"] for e in prior],
            **{f: [e[f] for e in prior] for f in PAIR_FIELDS},
        }
    )
    seen = {f: np.array([snapshot.seen_before(payer, f, request[f])]) for f in PAIR_FIELDS}
    arrays = {k: np.array([v], dtype=object) for k, v in fields.items()}
    return request_features_batch(fs, profiles, arrays, prepare_history(events), seen)[0]


def test_burst_raises_velocity_and_online_equals_offline(
    sandbox: Sandbox,
    service_settings: Settings,
    keys: Any,
    server: str,
    make_client: Callable[..., TestClient],
) -> None:
    payer = sandbox.entities["payment"][0]
    other_worker = make_client(service_settings)  # a second app on the same audit store
    headers = {"X-API-Key": keys.all}
    burst = [_payment(payer, i, minutes=2.0 * i) for i in range(6)]
    decisions: list[dict[str, Any]] = []
    with httpx.Client(base_url=server, timeout=10) as http:
        wait_until(lambda: http.get("/readyz").status_code == 200, what="uvicorn worker ready")
        for i, body in enumerate(burst):
            post = http.post if i % 2 == 0 else other_worker.post  # alternate the workers
            r = post(
                "/v1/payments/risk", json=body, headers={**headers, "Idempotency-Key": f"b{i}"}
            )
            assert r.status_code == 200, r.text
            decisions.append(r.json())
            if i == 2:  # a retry is replayed, not recorded as one more payment
                again = http.post(
                    "/v1/payments/risk", json=body, headers={**headers, "Idempotency-Key": "b2"}
                )
                assert again.json() == r.json()
        # an event a day earlier lies outside the 24h window; one later does not count before
        late = http.post("/v1/payments/risk", json=_payment(payer, 9, 60 * 24 + 1), headers=headers)
        assert late.status_code == 200, late.text

    audit = AuditStore(service_settings.audit_db_url)
    try:
        records = [audit.get_decision(d["decision_id"]) for d in decisions]
        late_record = audit.get_decision(late.json()["decision_id"])
        stored = audit.recent_payments(payer, 0, 2**62)
    finally:
        audit.close()
    features = [r["record"]["features"] for r in records if r is not None]
    assert len(features) == len(burst)
    assert "card_token" not in str(stored) and len(stored) == len(burst) + 1

    counts_1h = [f["payer_txn_count_1h"] for f in features]
    assert counts_1h == [float(i) for i in range(len(burst))]
    amounts_24h = [f["payer_txn_amount_24h"] for f in features]
    assert amounts_24h == [round(sum(b["amount"] for b in burst[:i]), 2) for i in range(len(burst))]
    # the device is new for the first payment only; each payee is new on its first use
    assert [f["payer_new_device_now"] for f in features] == [1.0] + [0.0] * (len(burst) - 1)
    assert [f["payer_new_counterpart_now"] for f in features] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    probabilities = [d["fraud_probability"] for d in decisions]
    assert min(probabilities[3:]) > probabilities[0], probabilities
    # 24h and a minute after the first payment: it has left the window
    assert late_record is not None
    assert late_record["record"]["features"]["payer_txn_count_24h"] == float(len(burst) - 1)

    snapshot = load_snapshot(sandbox.serving, MODELS["payment"][1])
    columns = get_feature_set(MODELS["payment"][1]).columns
    for n in (0, 3, len(burst) - 1):
        offline = _offline_row(snapshot, burst[n], burst[:n])
        online = np.array([np.nan if features[n][c] is None else features[n][c] for c in columns])
        np.testing.assert_array_equal(online, offline, err_msg=f"payment {n}")
