"""Views of the decision audit store for the dashboards (read through
:class:`yidai.audit.AuditReader`, never written; its columns are described in
:mod:`yidai.audit.reader`).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from yidai.audit import AuditReader


def find_decisions(
    url: str,
    *,
    decision_id: str | None = None,
    entity_id: str | None = None,
    product: str | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """Decisions by id, by customer / merchant / SME id, or the latest ones (newest first)."""
    with AuditReader(url) as reader:
        return reader.decisions(
            decision_id=decision_id.strip() if decision_id else None,
            entity_id=entity_id.strip() if entity_id else None,
            product=product or None,
            limit=limit,
        )


def payment_decisions(url: str, limit: int = 200_000) -> pd.DataFrame:
    """Payment-risk decisions as ``created_at, amount, action, tier, arm`` (newest first)."""
    rows = find_decisions(url, product="payment", limit=limit)
    if rows.empty:
        return pd.DataFrame(columns=["created_at", "amount", "action", "tier", "arm"])
    responses = rows["response"].map(json.loads)
    records = rows["record"].map(json.loads)
    return pd.DataFrame(
        {
            "created_at": pd.to_datetime(rows["created_at"], utc=True, format="ISO8601"),
            "amount": records.map(lambda r: float(r.get("request", {}).get("amount", "nan"))),
            "action": rows["outcome"],
            "tier": responses.map(lambda r: r.get("amount_tier")),
            "arm": rows["arm"],
        }
    )


def decision_detail(row: pd.Series) -> dict[str, Any]:
    """One audited decision split into what an analyst looks at.

    Returns ``summary`` (ids, product, outcome, arm, versions), ``inputs`` (the request, with no
    card token), ``scores`` (PD or fraud probability, score, grade), ``reasons`` (code and
    English / Chinese text), ``features`` (name -> value used by the model), ``challenger``
    (what the other arm would have done, or None) and ``limit`` fields for credit.
    """
    response: dict[str, Any] = json.loads(row["response"])
    record: dict[str, Any] = json.loads(row["record"])
    probability = response.get("pd", response.get("fraud_probability"))
    return {
        "summary": {
            "decision_id": row["decision_id"],
            "created_at": row["created_at"],
            "module": row["module"],
            "product": row["product"],
            "entity_id": row["entity_id"],
            "outcome": row["outcome"],
            "arm": row["arm"],
            "model_version": row["model_version"],
            "policy_version": row["policy_version"],
            # the service records ``snapshot`` (the feature snapshot id); older rows
            # ``snapshot_version``
            "snapshot_version": record.get("snapshot", record.get("snapshot_version")),
        },
        "inputs": record.get("request", {}),
        "scores": {
            "probability": probability,
            "score": response.get("score"),
            "grade": response.get("grade"),
        },
        "limit": {
            k: response.get(k)
            for k in ("limit", "approved_amount", "annual_rate")
            if response.get(k) is not None
        }
        | (
            {"proposed_limit": record["proposed_limit"]}
            if record.get("proposed_limit") is not None
            else {}
        ),
        "reasons": response.get("reason_codes", []),
        "features": record.get("features", {}),
        "challenger": record.get("shadow"),
    }
