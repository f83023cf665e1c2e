"""The decision explorer's analytics: find a decision by any id, and explain its inputs
(each feature's value, its percentile in the population of the live feature snapshot and its
contribution to the model's score)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.serving import current_pointer
from yidai.jobs.analytics.decisions import find_decisions

#: How many of the latest decisions an id that is not a decision or entity id is looked for in.
SCAN_LATEST = 20_000


def find_by_any_id(url: str, text: str, limit: int = 500) -> tuple[pd.DataFrame, str]:
    """Decisions matching ``text`` and how they matched (newest first).

    Tries, in order: a decision id, a customer / merchant / SME id (the decision's entity),
    then any other id quoted in the request or the response of the latest
    :data:`SCAN_LATEST` decisions (an account id, a seller's merchant id, a payee...).
    """
    text = text.strip()
    if not text:
        return find_decisions(url, limit=limit), "latest"
    found = find_decisions(url, decision_id=text, limit=limit)
    if len(found):
        return found, "decision id"
    found = find_decisions(url, entity_id=text, limit=limit)
    if len(found):
        return found, "customer / merchant / SME id"
    latest = find_decisions(url, limit=SCAN_LATEST)
    quoted = json.dumps(text)
    hit = latest["response"].str.contains(quoted, regex=False) | latest["record"].str.contains(
        quoted, regex=False
    )
    return latest.loc[hit].head(limit).reset_index(drop=True), "id in the request or response"


def split_model_version(model_version: str) -> tuple[str, str]:
    """``"personal_pd:3"`` (the service's audit) or ``"personal_pd v3"`` -> ``("personal_pd",
    "3")``; the version is empty when there is none."""
    text = model_version.strip()
    if ":" in text:
        name, _, version = text.rpartition(":")
        return name, version
    name, sep, version = text.rpartition(" v")
    return (name, version) if sep else (text, "")


def snapshot_population(serving: Path, feature_set: str) -> dict[str, np.ndarray]:
    """Each feature's non-missing values over the live snapshot's entities, sorted (empty if
    the feature set has no published snapshot)."""
    meta = current_pointer(serving, feature_set)
    if meta is None:
        return {}
    folder = Path(serving) / "features" / feature_set / str(meta["snapshot_id"])
    out: dict[str, np.ndarray] = {}
    for profile, columns in dict(meta.get("profiles", {})).items():
        path = folder / f"{profile}.parquet"
        if not path.exists():
            continue
        frame = pd.read_parquet(path, columns=list(columns))
        for column in columns:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
            out[column] = np.sort(values[~np.isnan(values)])
    return out


def percentile(value: float | None, population: np.ndarray | None) -> float:
    """Mid-rank percentile (0..1) of ``value`` in a sorted ``population``:
    ``(#below + #equal / 2) / n``; NaN when either is missing."""
    if value is None or population is None or not len(population) or value != value:
        return float("nan")
    below = np.searchsorted(population, value, side="left")
    upto = np.searchsorted(population, value, side="right")
    return float((below + (upto - below) / 2) / len(population))


def feature_contributions(model: Any, features: Mapping[str, float | None]) -> dict[str, float]:
    """Each feature's contribution to the model's raw score (log-odds of default or fraud;
    positive = riskier) for the recorded inputs: the booster's SHAP values
    (``pred_contrib``), with the linear part's when the model blends one
    (``LoadedModel.contributions``), the same the reason codes are derived from."""
    row = np.array(
        [[np.nan if features.get(n) is None else float(features[n]) for n in model.feature_names]]  # type: ignore[arg-type]
    )
    contrib = np.asarray(model.contributions(row))[0]
    return dict(zip(model.feature_names, contrib.tolist(), strict=True))


def inputs_table(
    features: Mapping[str, float | None],
    population: Mapping[str, np.ndarray],
    contributions: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per model input: ``feature, value, percentile`` (in the population, see
    :func:`percentile`) and ``contribution`` (NaN without a model), largest contribution
    (by size) first."""
    rows = [
        {
            "feature": name,
            "value": np.nan if value is None else float(value),
            "percentile": percentile(value, population.get(name)),
            "contribution": (contributions or {}).get(name, np.nan),
        }
        for name, value in features.items()
    ]
    table = pd.DataFrame(rows, columns=["feature", "value", "percentile", "contribution"])
    order = table["contribution"].abs().fillna(-1).sort_values(ascending=False, kind="stable")
    return table.loc[order.index].reset_index(drop=True)
