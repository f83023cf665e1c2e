"""Read-only views of the decision audit store (written by the scoring service).

The dashboards never write the audit store: SQLite is opened with ``mode=ro`` (WAL readers do
not block the service's writers), PostgreSQL through a plain SELECT.  Columns of the
``decisions`` table are described in ``yidai.audit``.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd

from yidai.core.errors import YidaiError

COLUMNS = (
    "decision_id",
    "created_at",
    "module",
    "product",
    "entity_id",
    "outcome",
    "arm",
    "model_version",
    "policy_version",
    "response",
    "record",
)


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (None for other databases)."""
    if not url.startswith("sqlite"):
        return None
    return Path(url.split("sqlite:///", 1)[-1])


def _query(url: str, where: str, params: dict[str, Any], limit: int) -> pd.DataFrame:
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM decisions {where} "
        f"ORDER BY created_at DESC LIMIT {int(limit)}"
    )
    path = sqlite_path(url)
    if path is not None:
        if not path.exists():
            return pd.DataFrame(columns=list(COLUMNS))
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as con:
                rows = con.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return pd.DataFrame(columns=list(COLUMNS))
            raise YidaiError(f"cannot read the audit store {path}: {exc}") from exc
        return pd.DataFrame(rows, columns=list(COLUMNS))
    from sqlalchemy import create_engine, text

    from yidai.audit import engine_url

    engine = create_engine(engine_url(url), pool_pre_ping=True)
    try:
        with engine.connect() as con:
            fetched = con.execute(text(sql), params).fetchall()
    finally:
        engine.dispose()
    return pd.DataFrame([tuple(r) for r in fetched], columns=list(COLUMNS))


def find_decisions(
    url: str,
    *,
    decision_id: str | None = None,
    entity_id: str | None = None,
    product: str | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """Decisions by id, by customer / merchant / SME id, or the latest ones (newest first)."""
    clauses, params = [], {}
    if decision_id:
        clauses.append("decision_id = :decision_id")
        params["decision_id"] = decision_id.strip()
    if entity_id:
        clauses.append("entity_id = :entity_id")
        params["entity_id"] = entity_id.strip()
    if product:
        clauses.append("product = :product")
        params["product"] = product
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return _query(url, where, params, limit)


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
            "snapshot_version": record.get("snapshot_version"),
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
