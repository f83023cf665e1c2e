"""The WoE scorecard challenger on seeded data with a known logistic truth."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from models.metrics import auc
from models.woe_scorecard import WoEScorecard, iv_strength
from yidai.core.errors import YidaiError


@pytest.fixture(scope="module")
def fitted(
    request: pytest.FixtureRequest,
) -> tuple[WoEScorecard, pd.DataFrame, pd.DataFrame]:
    make: Callable[..., pd.DataFrame] = request.getfixturevalue("make_frame")
    frame = make(n=8000, seed=3)
    features = [c for c in frame.columns if c.startswith("customer_")]
    train, test = frame.iloc[:6000], frame.iloc[6000:]
    monotone = {"customer_dpd_max_180d": 1, "customer_spend_avg_90d": -1,
                "customer_util_ratio_now": 1, "customer_bill_ontime_share_180d": -1}  # fmt: skip
    card = WoEScorecard(monotone=monotone).fit(train[features], train["label"])
    return card, train, test


def test_bins_follow_the_monotone_hints_and_weak_characteristics_are_dropped(
    fitted: tuple[WoEScorecard, pd.DataFrame, pd.DataFrame],
) -> None:
    card, _, _ = fitted
    table = card.points_table_
    for feature, sign in (("customer_util_ratio_now", 1), ("customer_spend_avg_90d", -1)):
        rows = table[(table["Variable"] == feature) & ~table["Bin"].isin(["Special", "Missing"])]
        rates = rows["Event rate"].to_numpy()
        steps = np.diff(rates) * sign
        assert len(rates) >= 3 and (steps >= -1e-12).all(), (feature, rates)
        # more risk, fewer points
        assert (np.diff(rows["Points"].to_numpy()) * sign <= 1e-9).all()
    report = card.iv_report_.set_index("feature")
    assert not report.loc["customer_noise_level_30d", "selected"]
    assert report.loc["customer_noise_level_30d", "iv"] < 0.02
    assert report.loc["customer_util_ratio_now", "selected"]
    assert list(card.iv_report_["iv"]) == sorted(card.iv_report_["iv"], reverse=True)
    assert "customer_util_ratio_now" in card.iv_report_markdown()


def test_points_add_up_and_scale_by_pdo(
    fitted: tuple[WoEScorecard, pd.DataFrame, pd.DataFrame],
) -> None:
    card, _, test = fitted
    X = test[card.feature_names_]
    points = card.points(X)
    np.testing.assert_allclose(points.sum(axis=1).to_numpy(), card.score(X), atol=1e-6)
    pd_ = card.predict_pd(X)
    s = card.scaling
    factor = s.pdo / math.log(2)
    expected = s.base_score - factor * math.log(s.base_odds) + factor * np.log((1 - pd_) / pd_)
    np.testing.assert_allclose(card.score(X), expected, atol=1e-6)


def test_it_ranks_close_to_the_truth_and_gives_points_lost_as_reasons(
    fitted: tuple[WoEScorecard, pd.DataFrame, pd.DataFrame],
) -> None:
    card, _, test = fitted
    X = test[card.feature_names_]
    oracle = auc(test["label"], test["true_pd"])
    assert auc(test["label"], card.predict_pd(X)) > oracle - 0.03
    reasons = card.reason_codes(X.head(50), top_k=2)
    points = card.points(X.head(50))
    for i, row in enumerate(reasons):
        assert len(row) <= 2
        lost = [r.points_lost for r in row]
        assert lost == sorted(lost, reverse=True) and all(v > 0 for v in lost)
        for r in row:
            assert card.max_points_[r.feature] - points.iloc[i][r.feature] == pytest.approx(
                r.points_lost, abs=0.01
            )


def test_bad_input_is_named() -> None:
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(YidaiError, match="both goods and bads"):
        WoEScorecard().fit(X, [0, 0, 0])
    with pytest.raises(YidaiError, match="unknown features"):
        WoEScorecard(monotone={"b": 1}).fit(X, [0, 1, 0])
    assert iv_strength(0.01) == "unpredictive" and iv_strength(0.35) == "strong"
