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
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features import build_training_set, credit_spine
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
) -> str:
    """Score every product's applications with its champion (and challenger) and publish them.

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
    finally:
        con.close()
    if not tables:
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
