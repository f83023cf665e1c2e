"""Each metric against a hand-computed value or scikit-learn on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from models import metrics as m
from yidai.core.errors import YidaiError

Y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
S = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.4, 0.05])


def test_auc_by_hand_and_against_sklearn() -> None:
    # 3 positives x 5 negatives = 15 pairs; positive 0.35 beats 0.1, 0.2, 0.05 (3),
    # 0.8 and 0.9 beat all 5 each -> 13 / 15.
    assert m.auc(Y, S) == pytest.approx(13 / 15)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(size=500) + y, 1)  # many ties
    assert m.auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert m.gini(y, s) == pytest.approx(2 * skm.roc_auc_score(y, s) - 1)


def test_auc_refuses_single_class_and_nan() -> None:
    with pytest.raises(YidaiError, match="both classes"):
        m.auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(YidaiError, match="NaN"):
        m.auc([0, 1], [0.1, np.nan])
    with pytest.raises(YidaiError, match="empty"):
        m.auc([], [])


def test_ks_by_hand_and_against_roc() -> None:
    # Perfect separation: KS = 1; by hand on Y,S: threshold 0.35 flags 3/3 bads and 2/5 goods
    # (0.4, 0.4) -> 1 - 0.4 = 0.6, and threshold 0.8 flags 2/3 bads, 0 goods -> 0.667.
    assert m.ks([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert m.ks(Y, S) == pytest.approx(2 / 3)
    fpr, tpr, _ = skm.roc_curve(Y, S)
    assert m.ks(Y, S) == pytest.approx(np.max(tpr - fpr))


def test_psi_hand_computed_and_properties() -> None:
    expected = np.repeat([1.0, 2.0], 50)  # two bins, 50/50
    actual = np.repeat([1.0, 2.0], [80, 20])  # 80/20
    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert m.psi(expected, actual) == pytest.approx(by_hand, rel=1e-3)
    rng = np.random.default_rng(1)
    base = rng.normal(size=20_000)
    assert m.psi(base, rng.normal(size=20_000)) < 0.01
    assert m.psi(base, rng.normal(0.5, 1, size=20_000)) > 0.2
    # Missing values get their own bin: half missing in actual is a large shift.
    shifted = np.where(rng.uniform(size=20_000) < 0.5, np.nan, base)
    assert m.psi(base, shifted) > 1.0


def test_psi_by_feature_names_columns() -> None:
    import pandas as pd

    a = pd.DataFrame({"x": np.arange(100.0), "z": np.ones(100)})
    b = pd.DataFrame({"x": np.arange(100.0) + 50, "z": np.ones(100)})
    result = m.psi_by_feature(a, b)
    assert set(result) == {"x", "z"}
    assert result["z"] == pytest.approx(0.0)
    assert result["x"] > 0.5
    with pytest.raises(YidaiError, match="missing"):
        m.psi_by_feature(a, b[["x"]])
    # a column compared from its own rows: x's upper half is b's lower half
    upper = np.arange(100) >= 50
    chosen = m.psi_by_feature(a, b, rows={"x": upper})
    assert chosen["x"] < result["x"] and chosen["z"] == pytest.approx(0.0)
    assert chosen["x"] == pytest.approx(m.psi(np.arange(50.0, 100.0), np.arange(100.0) + 50))


def test_brier_and_calibration_table() -> None:
    assert m.brier([0, 1], [0.5, 0.5]) == pytest.approx(0.25)
    assert m.brier(Y, S) == pytest.approx(skm.brier_score_loss(Y, S))
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 0.3, 50_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    table = m.calibration_table(y, p, bins=10)
    assert len(table) == 10 and table["n"].sum() == p.size
    assert table["expected_rate"].is_monotonic_increasing
    # Calibrated by construction: observed within a few points of expected in every decile.
    assert np.allclose(table["observed_rate"], table["expected_rate"], atol=0.025)
    assert table["observed"].sum() == y.sum()


def test_lift_by_hand() -> None:
    # Top 25% of 8 rows = 2 rows (0.9, 0.8), both bad: rate 1 / overall 3/8.
    assert m.lift(Y, S, top=0.25) == pytest.approx(1 / (3 / 8))
    with pytest.raises(YidaiError):
        m.lift(Y, S, top=0)


def test_average_precision_against_sklearn() -> None:
    assert m.average_precision(Y, S) == pytest.approx(skm.average_precision_score(Y, S))
    rng = np.random.default_rng(3)
    y = (rng.uniform(size=2000) < 0.02).astype(int)
    s = np.round(rng.normal(size=2000) + 2 * y, 1)
    assert m.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s))


def test_card_fraud_share_top_k_by_hand() -> None:
    day = ["d1"] * 5 + ["d2"] * 3
    card = ["a", "a", "b", "c", "d", "a", "e", "f"]
    y = [0, 1, 0, 0, 1, 0, 0, 1]
    s = [0.9, 0.1, 0.8, 0.2, 0.7, 0.6, 0.5, 0.1]
    # d1 cards by max score: a 0.9 (fraud), b 0.8, d 0.7 (fraud), c 0.2 -> top2 = a, b: 1/2.
    # d2: a 0.6, e 0.5, f 0.1 (fraud) -> top2 = a, e: 0/2.  Mean = 0.25.
    assert m.card_fraud_share_top_k(day, card, y, s, k=2) == pytest.approx(0.25)
    # k above the number of cards: d1 2/4 frauds, d2 1/3.
    assert m.card_fraud_share_top_k(day, card, y, s, k=10) == pytest.approx((0.5 + 1 / 3) / 2)


def test_card_precision_top_k_by_hand() -> None:
    """The handbook's definition: detected cards leave later days; always divided by k."""
    day = [1, 1, 1, 1, 2, 2, 2, 3]
    card = ["a", "b", "c", "d", "a", "b", "e", "e"]
    y = [1, 0, 1, 0, 1, 1, 0, 1]
    s = [0.9, 0.8, 0.7, 0.1, 0.95, 0.6, 0.5, 0.2]
    # Day 1: a 0.9 (fraud), b 0.8, c 0.7 (fraud), d 0.1 -> top2 = a, b: 1/2; a detected.
    # Day 2: a is removed though it scores 0.95 -> b 0.6 (fraud), e 0.5 -> top2: 1/2; b detected.
    # Day 3: only e (fraud) -> 1 of k=2 -> 1/2.  Mean 0.5.
    assert m.card_precision_top_k(day, card, y, s, k=2) == pytest.approx(0.5)
    # k=3: day 1 a, b, c -> 2/3 (a, c detected); day 2 b 0.6 (fraud), e -> 1/3; day 3 e -> 1/3.
    assert m.card_precision_top_k(day, card, y, s, k=3) == pytest.approx(
        (2 / 3 + 1 / 3 + 1 / 3) / 3
    )
    # The older share keeps a on day 2 and divides by the cards seen.
    assert m.card_fraud_share_top_k(day, card, y, s, k=3) > m.card_precision_top_k(
        day, card, y, s, k=3
    )


def test_card_precision_top_k_rejects_bad_input() -> None:
    with pytest.raises(YidaiError, match="k >= 1"):
        m.card_precision_top_k([1], ["a"], [1], [0.5], k=0)
    with pytest.raises(YidaiError, match="differ in length"):
        m.card_precision_top_k([1, 2], ["a"], [1, 0], [0.5, 0.1], k=1)


def test_amount_weighted_recall_by_hand() -> None:
    y = [1, 0, 1, 0, 1]
    s = [0.9, 0.8, 0.1, 0.2, 0.7]
    amount = [100.0, 5.0, 300.0, 1.0, 600.0]
    # alert 40% -> 2 rows flagged (0.9, 0.8): caught 100 of 1000.
    assert m.amount_weighted_recall(y, s, amount, alert_rate=0.4) == pytest.approx(0.1)
    # alert 60% -> 3 rows (0.9, 0.8, 0.7): caught 700 of 1000.
    assert m.amount_weighted_recall(y, s, amount, alert_rate=0.6) == pytest.approx(0.7)


def test_hosmer_lemeshow_by_hand_and_on_calibrated_data() -> None:
    # Three groups of two: O = 0, 1, 2; E = 0.2, 0.8, 1.4 (p sorted already).
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.1, 0.4, 0.4, 0.7, 0.7]
    h_expected = (
        (0 - 0.2) ** 2 / (0.2 * (1 - 0.1))
        + (1 - 0.8) ** 2 / (0.8 * (1 - 0.4))
        + (2 - 1.4) ** 2 / (1.4 * (1 - 0.7))
    )
    h, p_value = m.hosmer_lemeshow(y, p, bins=3)
    assert h == pytest.approx(h_expected)
    assert p_value == pytest.approx(math.erfc(math.sqrt(h_expected / 2)))  # chi2, 1 df
    rng = np.random.default_rng(5)
    pd_ = rng.uniform(0.01, 0.2, 20_000)
    labels = (rng.uniform(size=pd_.size) < pd_).astype(int)
    assert m.hosmer_lemeshow(labels, pd_)[1] > 0.01
    assert m.hosmer_lemeshow(labels, pd_ * 1.5)[1] < 1e-6  # over-predicting by half
    assert m.observed_to_expected(labels, pd_ * 1.5) == pytest.approx(1 / 1.5, rel=0.05)
    with pytest.raises(YidaiError, match="at least 3 groups"):
        m.hosmer_lemeshow(labels, pd_, bins=2)
