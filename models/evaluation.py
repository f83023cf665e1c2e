"""Out-of-time evaluation of a trained model: every metric, stability, the oracle, plots and
the model card, written to a report folder that the run logs as artifacts."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models import metrics as m
from models.scorecard import Scorecard

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Metrics of one model on its OOT window (and its stability against training)."""

    metrics: dict[str, float]
    feature_psi: dict[str, float]
    calibration: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def evaluate(
    *,
    kind: str,
    y_test: np.ndarray,
    p_test: np.ndarray,
    p_train: np.ndarray,
    X_train: pd.DataFrame,
    X_test: pd.DataFrame,
    oracle_score: np.ndarray | None = None,
    fraud_context: pd.DataFrame | None = None,
    true_fraud: np.ndarray | None = None,
    reference_rows: Mapping[str, np.ndarray] | None = None,
    alert_rate: float = 0.01,
    k_cards: int = 100,
) -> Evaluation:
    """All metrics with an ``oot_`` prefix, score and feature PSI (train vs OOT), the oracle.

    ``oracle_score``: the simulator's true PD of the same test rows (credit).  ``fraud_context``
    (fraud): columns ``day``, ``card``, ``amount`` aligned with the test rows; ``true_fraud``:
    the simulator's full fraud truth of those rows (reported or not).  ``reference_rows``:
    per feature, which rows of ``X_train`` its PSI compares with (all when absent).
    """
    y = np.asarray(y_test, dtype=np.float64)
    p = np.asarray(p_test, dtype=np.float64)
    out: dict[str, float] = {
        "oot_auc": m.auc(y, p),
        "oot_gini": m.gini(y, p),
        "oot_ks": m.ks(y, p),
        "oot_brier": m.brier(y, p),
        "oot_lift_top10": m.lift(y, p, top=0.1),
        "oot_average_precision": m.average_precision(y, p),
        "oot_event_rate": float(y.mean()),
        "oot_observed_expected": m.observed_to_expected(y, p),
        "oot_mean_predicted": float(p.mean()),
        "oot_rows": float(y.size),
        "score_psi": m.psi(p_train, p),
    }
    if kind == "credit":
        out["oot_hl_statistic"], out["oot_hl_pvalue"] = m.hosmer_lemeshow(y, p)
    notes: list[str] = []
    if oracle_score is not None:
        oracle = np.asarray(oracle_score, dtype=np.float64)
        known = ~np.isnan(oracle)
        if known.all():
            out["oracle_auc"] = m.auc(y, oracle)
            out["oracle_gap"] = out["oracle_auc"] - out["oot_auc"]
        else:
            notes.append(f"oracle skipped: {int((~known).sum())} test rows lack a true PD")
    if kind == "fraud" and fraud_context is not None:
        day, card = fraud_context["day"], fraud_context["card"]
        out["oot_card_precision_top_k"] = m.card_precision_top_k(day, card, y, p, k=k_cards)
        out["oot_card_fraud_share_top_k"] = m.card_fraud_share_top_k(day, card, y, p, k=k_cards)
        out["oot_amount_weighted_recall"] = m.amount_weighted_recall(
            y, p, fraud_context["amount"], alert_rate=alert_rate
        )
        if true_fraud is not None:
            truth = np.asarray(true_fraud, dtype=np.float64)
            out["true_fraud_share"] = float(truth.mean())
            out["label_coverage"] = float(y.sum() / truth.sum()) if truth.sum() else float("nan")
            if 0 < truth.sum() < truth.size:
                out["oot_average_precision_vs_truth"] = m.average_precision(truth, p)
                out["oot_auc_vs_truth"] = m.auc(truth, p)
    feature_psi = m.psi_by_feature(X_train, X_test, rows=reference_rows)
    out["max_feature_psi"] = max(feature_psi.values()) if feature_psi else 0.0
    return Evaluation(out, feature_psi, m.calibration_table(y, p), notes)


def write_report(
    folder: Path,
    *,
    name: str,
    kind: str,
    evaluation: Evaluation,
    y_test: np.ndarray,
    p_test: np.ndarray,
    p_train: np.ndarray,
    importance: pd.Series,
    scorecard: Scorecard,
    card: dict[str, Any],
) -> None:
    """Plots (ROC, KS, calibration, score distribution, importance), tables and the model
    card into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    _plots(folder, evaluation, y_test, p_test, p_train, importance, scorecard)
    evaluation.calibration.to_csv(folder / "calibration_by_decile.csv", index=False)
    pd.Series(evaluation.feature_psi, name="psi").rename_axis("feature").to_csv(
        folder / "feature_psi.csv"
    )
    importance.rename("gain").rename_axis("feature").to_csv(folder / "feature_importance.csv")
    (folder / "metrics.json").write_text(
        json.dumps(evaluation.metrics, indent=2, sort_keys=True), encoding="utf-8"
    )
    (folder / "model_card.md").write_text(
        model_card(name=name, kind=kind, evaluation=evaluation, importance=importance, **card),
        encoding="utf-8",
    )


def _plots(
    folder: Path,
    evaluation: Evaluation,
    y: np.ndarray,
    p: np.ndarray,
    p_train: np.ndarray,
    importance: pd.Series,
    scorecard: Scorecard,
) -> None:
    # heavy: matplotlib
    import matplotlib

    matplotlib.use("Agg")
    # heavy: matplotlib
    import matplotlib.pyplot as plt

    plt.rcParams["figure.autolayout"] = True

    fpr, tpr, _ = m.roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {evaluation.metrics['oot_auc']:.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (OOT)")
    ax.legend(loc="lower right")
    fig.savefig(folder / "roc.png", dpi=72)
    plt.close(fig)

    share = np.linspace(0, 1, fpr.size)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(share, tpr, label="bads (cumulative)")
    ax.plot(share, fpr, label="goods (cumulative)")
    ax.set(
        xlabel="threshold rank (riskiest first)",
        ylabel="cumulative share",
        title=f"KS {evaluation.metrics['oot_ks']:.3f}",
    )
    ax.legend()
    fig.savefig(folder / "ks.png", dpi=72)
    plt.close(fig)

    table = evaluation.calibration
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(table["expected_rate"], table["observed_rate"], "o-", label="deciles")
    top = float(max(table["expected_rate"].max(), table["observed_rate"].max()))
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set(xlabel="expected rate", ylabel="observed rate", title="Calibration by decile (OOT)")
    fig.savefig(folder / "calibration.png", dpi=72)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(300, 900, 61).tolist()
    for label, scores in (("train", p_train), ("OOT", p)):
        points = np.clip(scorecard.points(scores), 300, 900)
        ax.hist(points, bins, alpha=0.5, density=True, label=label)
    psi_text = f"{evaluation.metrics['score_psi']:.3f}"
    ax.set(xlabel="score points", title=f"Score distribution (PSI {psi_text})")
    ax.legend()
    fig.savefig(folder / "score_distribution.png", dpi=72)
    plt.close(fig)

    top_features = importance.head(20)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(top_features) + 1))
    ax.barh(list(top_features.index), top_features.to_numpy())
    ax.set(xlabel="total gain", title="Feature importance")
    fig.savefig(folder / "feature_importance.png", dpi=72)
    plt.close(fig)


def model_card(
    *,
    name: str,
    kind: str,
    evaluation: Evaluation,
    importance: pd.Series,
    feature_set: str,
    feature_set_version: str,
    windows: dict[str, str],
    rows: dict[str, int],
    params: dict[str, Any],
    gate_reason: str = "",
) -> str:
    """A short Markdown model card."""
    metrics = evaluation.metrics
    lines = [
        f"# Model card: {name}",
        "",
        f"* Kind: {'probability of default' if kind == 'credit' else 'fraud probability'}, "
        "LightGBM with monotone constraints, calibrated on a held-out period.",
        f"* Feature set: `{feature_set}` (fingerprint `{feature_set_version}`), "
        f"{len(importance)} features.",
        "* Windows: " + ", ".join(f"{k} {v}" for k, v in windows.items()),
        "* Rows: " + ", ".join(f"{k} {v}" for k, v in rows.items()),
        f"* Trees: {params.get('best_iteration', '?')}, learning rate "
        f"{params.get('learning_rate', '?')}, scale_pos_weight "
        f"{params.get('scale_pos_weight', '?')}",
        "",
        "## Out-of-time performance",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items())),
        "",
        "## Top features (gain)",
        "",
        *(f"1. `{f}`" for f in importance.head(10).index),
        "",
        "## Limits",
        "",
        "* Trained on simulated data when run on the demo; the oracle rows compare with the "
        "simulator's true PD.",
        "* Calibration holds for the population of the training window; watch score PSI.",
    ]
    if gate_reason:
        lines += ["", "## Promotion gate", "", gate_reason]
    if evaluation.notes:
        lines += ["", "## Notes", "", *(f"* {n}" for n in evaluation.notes)]
    return "\n".join(lines) + "\n"
