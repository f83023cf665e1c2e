"""A small, real serving environment for tests, benchmarks and the example integration.

Synthetic contract-shaped warehouse rows (``tests.support.synthetic``) -> feature build -> published
snapshots under ``settings.serving`` -> one small LightGBM model per product, trained on the
snapshot's own profiles with a seeded logistic label and registered in the MLflow registry of
``settings`` (``champion``; ``challenger`` for the products asked for).  Nothing is mocked:
the service loads all of it through the project's real loaders.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from features import build_features, get_feature_set, load_snapshot, publish_snapshot
from models.estimator import GradientBoostedPD
from models.registry import GateDecision, ModelPackage, log_and_register
from models.scorecard import Scorecard
from models.training import FACTOR_SCALING_ROUNDS, FACTOR_WEIGHTS, LINEAR_WEIGHTS
from scoring_service.demo import entity_ids
from tests.support.synthetic import synthetic_warehouse
from yidai.core import catalogue
from yidai.core.settings import Settings

__all__ = ["MODELS", "Sandbox", "build_sandbox", "entity_ids", "train_registered_model"]

AS_OF = dt.date(2026, 6, 30)
#: product -> (model, feature set), from the catalogue.
MODELS = {m.product: (m.name, m.feature_set) for m in catalogue.MODELS}
FAST_PARAMS = {"n_estimators": 40, "learning_rate": 0.2, "early_stopping_rounds": 10}


@dataclass(frozen=True)
class Sandbox:
    """What was built: entity ids with a profile, per product."""

    serving: Path
    entities: dict[str, list[str]]


def publish_snapshots(settings: Settings, *, seed: int = 7, n_pos: int = 20_000) -> None:
    """Synthetic warehouse (its own file under ``home``) -> features -> published snapshots."""
    path = settings.home / "sandbox" / "warehouse.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        synthetic_warehouse(
            con, n_pos=n_pos, n_payments=n_pos // 4, n_orders=n_pos // 10, seed=seed
        )
        build_features(con, AS_OF)
        publish_snapshot(con, settings.serving, AS_OF)
    finally:
        con.close()


def train_registered_model(
    settings: Settings, product: str, *, seed: int = 7, alias: str = "champion", n: int = 6000
) -> str:
    """Train a small model for ``product`` on its snapshot and register it under ``alias``."""
    name, feature_set = MODELS[product]
    fs = get_feature_set(feature_set)
    snapshot = load_snapshot(settings.serving, feature_set)
    rng = np.random.default_rng(seed)
    base = snapshot.frame.to_numpy()
    rows = base[rng.integers(0, len(base), n)] if len(base) else np.zeros((n, base.shape[1]))
    frame = pd.DataFrame(np.nan, index=range(n), columns=fs.columns)
    frame[snapshot.profile_columns()] = rows * rng.lognormal(0, 0.3, rows.shape)
    for f in fs.request_features:
        frame[f.name] = rng.gamma(1.0, 1.0, n)
    z = frame.rank(pct=True).fillna(0.5).to_numpy()
    # about 2% bad: a realistic consumer-credit base rate, so most applicants get approved
    logit = -4.2 + 2.5 * (z[:, 0] - z[:, 1]) + 1.5 * (z[:, -1] - 0.5) + rng.normal(0, 0.5, n)
    if product == "payment":  # card testing: bursts of payments raise the fraud risk
        burst = frame[["payer_txn_count_1h", "payer_txn_count_24h"]].rank(pct=True).to_numpy()
        logit = logit - 2.5 * (z[:, 0] - z[:, 1]) + 3.0 * (burst.sum(axis=1) - 1.0)
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    cut = int(n * 0.7)
    # the credit models blend a linear part into the trees' margin, as trained ones do
    estimator = GradientBoostedPD(
        **FAST_PARAMS,  # type: ignore[arg-type]
        linear_weight=LINEAR_WEIGHTS.get(product, 0.0),
        factor_weight=FACTOR_WEIGHTS.get(product, 0.0),
        factor_scaling_rounds=FACTOR_SCALING_ROUNDS.get(product, 0),
        random_state=seed,
        n_jobs=1,
    )
    estimator.fit(frame.iloc[:cut], label[:cut], eval_set=(frame.iloc[cut:], label[cut:]))
    package = ModelPackage(
        name=name,
        estimator=estimator,
        scorecard=Scorecard(),
        feature_set=feature_set,
        feature_set_version=snapshot.fingerprint,
        reason_groups=fs.reason_groups,
        params={"sandbox": True, "seed": seed},
        metrics={},
        primary_metric="oot_auc",
    )
    gate = GateDecision(alias == "champion", f"sandbox model ({alias})")
    return log_and_register(package, gate, settings=settings).version


def build_sandbox(
    settings: Settings,
    *,
    seed: int = 7,
    products: Sequence[str] = tuple(MODELS),
    challengers: Sequence[str] = ("personal",),
    n_pos: int = 20_000,
) -> Sandbox:
    """Snapshots and registered models for ``products`` (quiet; a few seconds)."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    publish_snapshots(settings, seed=seed, n_pos=n_pos)
    for product in products:
        train_registered_model(settings, product, seed=seed)
        if product in challengers:
            train_registered_model(settings, product, seed=seed + 1, alias="challenger")
    return Sandbox(settings.serving, entity_ids(settings, products))


def service_env(settings: Settings, hash_key_file: Path) -> dict[str, str]:
    """The environment of a ``yidai serve`` process on ``settings`` alone: the caller's
    ``YIDAI_``/``MLFLOW_``/``AIRFLOW_`` variables dropped, no ``.env`` read, the audit hash key
    kept in ``hash_key_file`` (generated on first start, then reused)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("YIDAI_", "MLFLOW_", "AIRFLOW_"))
    }
    env.update(
        YIDAI_HOME=str(settings.home),
        YIDAI_MLFLOW_TRACKING_URI=settings.tracking_uri,
        YIDAI_AUDIT_DB_URL=settings.audit_url,
        YIDAI_API_KEYS_FILE=str(settings.api_keys_file),
        YIDAI_POLICY_DIR=str(settings.policies),
        YIDAI_SERVING_DIR=str(settings.serving),
        YIDAI_ENV_FILE="",
        YIDAI_AUDIT_HASH_KEY_FILE=str(hash_key_file),
    )
    return env
