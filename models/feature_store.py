"""Training sets from the feature store (``features/``), with the simulator's truth joined for
the oracle only (never a feature)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from yidai.errors import YidaiError
from yidai.settings import Settings

if TYPE_CHECKING:
    import duckdb

    from models.training import ModelSpec, TrainingData

log = logging.getLogger(__name__)

#: Fraud: how much labelled history to train on, and the share of legitimate events kept in
#: the training window (all frauds are kept; calibration and test windows are complete).
FRAUD_HISTORY_DAYS = 240
FRAUD_TRAIN_NEGATIVE_SHARE = 0.25


def default_as_of(con: duckdb.DuckDBPyConnection) -> dt.date:
    """The last day with POS transactions or payments in the warehouse."""
    row = con.execute(
        "SELECT max(d) FROM (SELECT max(ts) AS d FROM pos_transactions "
        "UNION ALL SELECT max(ts) FROM payments)"
    ).fetchone()
    if row is None or row[0] is None:
        raise YidaiError("the warehouse holds no transactions; run `yidai ingest` first")
    value = row[0]
    return value.date() if isinstance(value, dt.datetime) else value


def training_data_from_feature_store(
    spec: ModelSpec, settings: Settings, as_of: dt.date | None
) -> TrainingData:
    """Spine, point-in-time features and (when the simulator's truth exists) oracle columns."""
    from features import FEATURE_SETS
    from yidai.warehouse import connect

    if spec.feature_set not in FEATURE_SETS:
        raise YidaiError(
            f"feature set {spec.feature_set} of {spec.name} is not declared in features/"
        )
    fs = FEATURE_SETS[spec.feature_set]
    if not settings.warehouse.exists():
        raise YidaiError(f"warehouse {settings.warehouse} does not exist; run `yidai ingest`")
    # The feature store's spine functions create missing tables, so they need a read-write
    # connection (training runs in the warehouse pool of the pipeline).
    con = connect(settings.warehouse)
    try:
        as_of = as_of or default_as_of(con)
        if spec.kind == "credit":
            frame = _credit_frame(con, spec, settings, as_of)
        else:
            frame = _fraud_frame(con, spec, settings, as_of)
    finally:
        con.close()
    from models.training import TrainingData

    missing = [c for c in fs.columns if c not in frame.columns]
    if missing:
        raise YidaiError(f"the training set of {fs.name} lacks feature columns {missing}")
    log.info(
        "%s: %d rows, %d positives as of %s", spec.name, len(frame), frame["label"].sum(), as_of
    )
    return TrainingData(
        frame=frame,
        feature_names=list(fs.columns),
        feature_set=fs.name,
        feature_set_version=fs.fingerprint,
        monotone={f.name: f.monotone for f in fs.features if f.monotone},
        reason_groups=dict(fs.reason_groups),
        id_column="id",
    )


def _credit_frame(
    con: duckdb.DuckDBPyConnection, spec: ModelSpec, settings: Settings, as_of: dt.date
) -> pd.DataFrame:
    from features import build_training_set, credit_spine

    assert spec.product is not None
    spine = credit_spine(con, spec.product, as_of, settings.performance_months)
    frame = build_training_set(con, spine, spec.feature_set)
    frame = frame.rename(columns={"decision_ts": "ts"}).assign(
        id=frame["application_id"], label=frame["label"].astype(int)
    )
    truth = _read_truth(settings.truth, "applications.parquet", ["application_id", "true_pd"])
    if truth is not None:
        frame = frame.merge(truth, on="application_id", how="left", validate="one_to_one")
    return frame


def _fraud_frame(
    con: duckdb.DuckDBPyConnection, spec: ModelSpec, settings: Settings, as_of: dt.date
) -> pd.DataFrame:
    from features import build_training_set, fraud_spine
    from models.training import SplitConfig

    delay = settings.fraud_label_delay_days
    start = as_of - dt.timedelta(days=delay + FRAUD_HISTORY_DAYS)
    spine = fraud_spine(con, as_of, delay, start=start)
    if spine.empty:
        raise YidaiError(f"no labelled payment events between {start} and {as_of} - {delay}d")
    # Keep every fraud but only a share of legitimate events in the training window, before
    # the (costly) point-in-time feature build; calibration and test windows stay complete.
    split = SplitConfig.for_kind("fraud", settings)
    ts = pd.to_datetime(spine["decision_ts"])
    cal_start = (
        ts.max().normalize()
        - pd.Timedelta(days=split.test_days - 1)
        - pd.Timedelta(days=split.gap_days + split.calibration_days)
    )
    rng = np.random.default_rng(settings.seed)
    keep = (
        (ts >= cal_start).to_numpy()
        | (spine["label"] == 1).to_numpy()
        | (rng.uniform(size=len(spine)) < FRAUD_TRAIN_NEGATIVE_SHARE)
    )
    frame = build_training_set(con, spine[keep].reset_index(drop=True), spec.feature_set)
    frame = frame.drop(columns=["ts"]).rename(columns={"decision_ts": "ts"})
    frame = frame.assign(
        id=frame["event_id"], label=frame["label"].astype(int), card=frame["payer_id"]
    )
    truth = _read_truth(settings.truth, "fraud.parquet", ["ref_type", "ref_id"])
    if truth is not None:
        known = set(zip(truth["ref_type"], truth["ref_id"], strict=True))
        frame["true_fraud"] = [
            int((t, i) in known)
            for t, i in zip(frame["event_type"], frame["event_id"], strict=True)
        ]
    return frame


def _read_truth(folder: Path, name: str, columns: list[str]) -> pd.DataFrame | None:
    """A simulator truth table, or None when there is none (real bank data)."""
    path = folder / name
    if not path.exists():
        log.info("no simulator truth at %s: the oracle is skipped", path)
        return None
    return pd.read_parquet(path, columns=columns)
