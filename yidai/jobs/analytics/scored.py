"""Scored historical applications, published for model monitoring and the policy simulator.

For each credit product: every application (approved and declined) with its default label
when matured (:func:`features.credit_spine`), the features as known at decision time
(:func:`features.build_training_set`), the champion's (and challenger's) PD, score and grade
(:func:`models.registry.load_model`), and, on simulated data, the simulator's truth.
Published under ``<serving>/applications`` (one table per product) with an atomic pointer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features import build_training_set, credit_spine, fraud_spine
from features.training import fraud_label_delay
from models.challengers import load_scorecard
from models.registry import load_model
from yidai.core import catalogue
from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings
from yidai.core.warehouse import connect_tables
from yidai.decisioning import load_credit_policy
from yidai.jobs.analytics.dashboard_tables import publish_tables
from yidai.jobs.analytics.portfolio_tables import warehouse_as_of

log = logging.getLogger(__name__)

SCORED_AREA = "applications"
CREDIT_PRODUCTS = catalogue.CREDIT_PRODUCTS
#: The scored payment events' table in the scored area (the fraud operations view reads it).
PAYMENT_EVENTS = "payment_events"
#: Days of labelled payment events scored for the fraud view, and the share of legitimate
#: events kept (every reported fraud is kept; ``weight`` undoes the sampling).
PAYMENT_EVENT_DAYS = 28
PAYMENT_LEGIT_SHARE = 0.05

_EVENT_STATUS_SQL = """
SELECT 'pos' AS event_type, txn_id AS event_id, status, status = 'declined' AS rules_blocked
FROM pos_transactions WHERE ts >= CAST(? AS TIMESTAMP) AND ts < CAST(? AS TIMESTAMP)
UNION ALL
SELECT 'payment', payment_id, status, status = 'failed'
FROM payments WHERE ts >= CAST(? AS TIMESTAMP) AND ts < CAST(? AS TIMESTAMP)
"""


def _scores(model: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pd_ = np.asarray(model.predict_pd(frame[model.feature_names]), dtype=np.float64)
    return (
        pd_,
        np.asarray(model.score_points(pd_), np.float64),
        np.asarray(model.grade(pd_)).astype(str),
    )


def score_applications(
    con: duckdb.DuckDBPyConnection,
    product: str,
    as_of: date,
    champion: Any,
    challenger: Any | None = None,
    extra_features: Sequence[str] = (),
    truth: pd.DataFrame | None = None,
    scorecard: Any | None = None,
) -> pd.DataFrame:
    """Every application of ``product`` up to ``as_of``, scored by the given models.

    ``champion`` / ``challenger`` are loaded models (``feature_set``, ``feature_names``,
    ``predict_pd``, ``score_points``, ``grade``, ``version``); ``extra_features`` are other
    feature columns to keep (those the policy reads); ``truth`` has ``application_id,
    true_pd, defaulted`` from the simulator; ``scorecard`` (the WoE scorecard challenger)
    adds ``scorecard_pd``, ``scorecard_score``, ``scorecard_grade``, ``scorecard_version``.
    """

    spine = credit_spine(con, product, as_of, include_declined=True)
    if spine.empty:
        raise YidaiError(f"no {product} applications up to {as_of} in the warehouse")
    frame = build_training_set(con, spine, champion.feature_set)
    pd_, score, grade = _scores(champion, frame)
    keep = list(dict.fromkeys([*champion.feature_names, *extra_features]))
    keep = [c for c in keep if c in frame.columns]
    out = spine.assign(
        booking_month=pd.to_datetime(spine["decision_ts"]).dt.to_period("M").dt.start_time,
        pd=pd_,
        score=score,
        grade=grade,
        model_version=f"{champion.name} v{champion.version}",
    )
    for prefix, model in (("challenger", challenger), ("scorecard", scorecard)):
        if model is None:
            continue
        other = (
            frame
            if model.feature_set == champion.feature_set
            else build_training_set(con, spine, model.feature_set)
        )
        m_pd, m_score, m_grade = _scores(model, other)
        columns: dict[str, Any] = {
            f"{prefix}_pd": m_pd,
            f"{prefix}_score": m_score,
            f"{prefix}_grade": m_grade,
            f"{prefix}_version": f"{model.name} v{model.version}",
        }
        out = out.assign(**columns)
    out = pd.concat([out, frame[keep]], axis=1)
    if truth is not None:
        t = truth[["application_id", "true_pd", "defaulted"]].rename(
            columns={"defaulted": "true_defaulted"}
        )
        out = out.merge(t, on="application_id", how="left", validate="one_to_one")
        out["true_defaulted"] = out["true_defaulted"].astype("float64")
    return out


def score_payment_events(
    con: duckdb.DuckDBPyConnection,
    as_of: date,
    model: Any,
    *,
    days: int = PAYMENT_EVENT_DAYS,
    legit_share: float = PAYMENT_LEGIT_SHARE,
    label_delay_days: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """POS and outgoing payment events of ``days`` days before the label delay, scored by
    the fraud model, for the fraud operations view.

    Every event with a fraud report known at ``as_of`` is kept, and a ``legit_share`` random
    sample of the others; ``weight`` is 1 / the row's sampling share, so weighted sums
    estimate the whole population.  Columns: ``event_type, event_id, ts, payer_id, amount,
    label, fraud_prob, weight, rules_blocked`` (the bank's historical block: POS
    ``declined``, payment ``failed``), ``model_version``.
    """
    if not 0 < legit_share <= 1:
        raise YidaiError(f"legit_share must be in (0, 1], got {legit_share}")
    delay = fraud_label_delay(con, as_of) if label_delay_days is None else label_delay_days
    end = as_of + timedelta(days=1) - timedelta(days=delay)
    start = end - timedelta(days=days)
    spine = fraud_spine(con, as_of, label_delay_days=delay, start=start)
    if spine.empty:
        raise YidaiError(f"no payment events between {start} and {end} to score")
    rng = np.random.default_rng(seed)
    fraud = (spine["label"] == 1).to_numpy()
    keep = fraud | (rng.uniform(size=len(spine)) < legit_share)
    spine = spine[keep].reset_index(drop=True)
    frame = build_training_set(con, spine, model.feature_set)
    status = con.execute(_EVENT_STATUS_SQL, [start, end, start, end]).df()
    out = pd.DataFrame(
        {
            "event_type": frame["event_type"].astype(str),
            "event_id": frame["event_id"].astype(str),
            "ts": pd.to_datetime(frame["decision_ts"]),
            "payer_id": frame["payer_id"].astype(str),
            "amount": frame["amount"].astype("float64"),
            "label": frame["label"].astype("int64"),
            "fraud_prob": np.asarray(model.predict_pd(frame[model.feature_names]), np.float64),
        }
    )
    out["weight"] = np.where(out["label"] == 1, 1.0, 1.0 / legit_share)
    out = out.merge(
        status[["event_type", "event_id", "rules_blocked"]],
        on=["event_type", "event_id"],
        how="left",
        validate="one_to_one",
    )
    out["rules_blocked"] = out["rules_blocked"].fillna(False).astype(bool)
    out["model_version"] = f"{model.name} v{model.version}"
    return out


def _load_scorecard(model: str) -> Any | None:
    try:
        return load_scorecard(model)
    except YidaiError as exc:
        log.info("no scorecard challenger of %s: %s", model, exc)
        return None


def _load(name: str, alias: str) -> Any | None:

    try:
        return load_model(name, alias)
    except YidaiError as exc:
        log.info("no %s model %s: %s", alias, name, exc)
        return None


def publish_scored_applications(
    as_of: date | None = None,
    products: Sequence[str] = CREDIT_PRODUCTS,
    warehouse: Path | None = None,
    serving: Path | None = None,
    score_payments: bool = True,
) -> str:
    """Score every product's applications with its champion (and challenger) and publish them;
    with ``score_payments``, also the recent payment events with the fraud champion
    (:func:`score_payment_events`, table ``payment_events``).

    Opens the warehouse read-only (run it inside the warehouse pool); products without a
    champion model are skipped with a log line; none at all is an error.  Returns the version.
    """

    settings = get_settings()
    serving = serving or settings.serving
    truth_file = settings.truth / "applications.parquet"
    truth = pd.read_parquet(truth_file) if truth_file.exists() else None
    con = connect_tables(warehouse, read_only=True)  # None: the active engine's tables
    tables: dict[str, pd.DataFrame] = {}
    versions: dict[str, str] = {}
    features: dict[str, list[str]] = {}
    try:
        as_of = as_of or warehouse_as_of(con)
        for product in products:
            policy = load_credit_policy(product)
            champion = _load(policy.model, "champion")
            if champion is None:
                continue
            challenger = _load(policy.model, "challenger")
            tables[product] = score_applications(
                con, product, as_of, champion, challenger, policy.feature_names, truth,
                scorecard=_load_scorecard(policy.model),
            )  # fmt: skip
            versions[product] = f"{champion.name} v{champion.version}"
            features[product] = list(champion.feature_names)
        fraud_model = _load(catalogue.FRAUD_MODEL.name, "champion") if score_payments else None
        if fraud_model is not None:
            tables[PAYMENT_EVENTS] = score_payment_events(con, as_of, fraud_model)
            versions[PAYMENT_EVENTS] = f"{fraud_model.name} v{fraud_model.version}"
    finally:
        con.close()
    if not any(p in tables for p in products):
        raise YidaiError("no champion credit model is registered; run `yidai train --all` first")
    meta = {
        "as_of": as_of.isoformat(),
        "models": versions,
        "features": features,
        "truth": truth is not None,
    }
    version = publish_tables(serving / SCORED_AREA, tables, meta)
    log.info("published scored applications %s (%s)", version, ", ".join(tables))
    return version
