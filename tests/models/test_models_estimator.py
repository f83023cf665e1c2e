"""GradientBoostedPD, calibrators, scorecard and reason codes on seeded synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from models.calibration import (
    IsotonicCalibrator,
    PlattCalibrator,
    anchor_level,
    calibrator_from_dict,
    choose_calibration,
    fit_calibrator,
)
from models.estimator import GradientBoostedPD
from models.metrics import auc
from models.reasons import ReasonCoder, reason_group_of
from models.scorecard import Scorecard
from yidai.core.errors import YidaiError


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    n = len(frame)
    return frame.iloc[: n // 2], frame.iloc[n // 2 : 3 * n // 4], frame.iloc[3 * n // 4 :]


def _fit(
    frame: pd.DataFrame, features: list[str], monotone: dict[str, int], **kw: object
) -> GradientBoostedPD:
    train, cal, _ = _split(frame)
    model = GradientBoostedPD(n_estimators=150, learning_rate=0.1, monotone=monotone, **kw)  # type: ignore[arg-type]
    return model.fit(train[features], train["label"], eval_set=(cal[features], cal["label"]))


@pytest.fixture(scope="module")
def fitted(
    credit_frame: pd.DataFrame, feature_names: list[str], monotone: dict[str, int]
) -> GradientBoostedPD:
    return _fit(credit_frame, feature_names, monotone)


def test_learns_the_truth_and_is_calibrated(
    fitted: GradientBoostedPD, credit_frame: pd.DataFrame, feature_names: list[str]
) -> None:
    _, _, test = _split(credit_frame)
    pd_hat = fitted.predict_pd(test[feature_names])
    oracle = auc(test["label"], test["true_pd"])
    assert auc(test["label"], pd_hat) > oracle - 0.03
    # Class weighting inflated the margin; calibration brings the mean PD back to the truth.
    assert fitted.scale_pos_weight_ > 3
    assert pd_hat.mean() == pytest.approx(test["true_pd"].mean(), rel=0.2)
    proba = fitted.predict_proba(test[feature_names])
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert fitted.best_iteration_ <= 150 and fitted.booster_.num_trees() == fitted.best_iteration_
    assert fitted.feature_importance().index[0] != "customer_noise_level_30d"


def test_monotone_constraints_hold(
    fitted: GradientBoostedPD, credit_frame: pd.DataFrame, feature_names: list[str]
) -> None:
    base = credit_frame[feature_names].iloc[:200].reset_index(drop=True)
    for feature, sign in {"customer_dpd_max_180d": 1, "customer_spend_avg_90d": -1}.items():
        grid = np.linspace(base[feature].min(), base[feature].max() + 3, 25)
        curves = []
        for value in grid:
            probe = base.copy()
            probe[feature] = value
            curves.append(fitted.decision_function(probe))
        steps = np.diff(np.array(curves), axis=0) * sign
        assert (steps >= -1e-12).all(), feature


def test_deterministic_given_seed(
    credit_frame: pd.DataFrame, feature_names: list[str], monotone: dict[str, int]
) -> None:
    a = _fit(credit_frame, feature_names, monotone, random_state=5)
    b = _fit(credit_frame, feature_names, monotone, random_state=5)
    assert a.booster_.model_to_string() == b.booster_.model_to_string()


def test_column_order_and_bad_input(
    fitted: GradientBoostedPD, credit_frame: pd.DataFrame, feature_names: list[str]
) -> None:
    rows = credit_frame[feature_names].iloc[:5]
    shuffled = rows[list(reversed(feature_names))]
    assert np.allclose(fitted.predict_pd(rows), fitted.predict_pd(shuffled))
    assert np.allclose(fitted.predict_pd(rows), fitted.predict_pd(rows.to_numpy()))
    with pytest.raises(YidaiError, match="lacks"):
        fitted.predict_pd(rows.drop(columns=feature_names[0]))
    with pytest.raises(YidaiError, match="columns"):
        fitted.predict_pd(rows.to_numpy()[:, :2])
    one_class = credit_frame.assign(label=0)
    with pytest.raises(YidaiError, match="single class"):
        _fit(one_class, feature_names, {})
    with pytest.raises(YidaiError, match="empty"):
        GradientBoostedPD().fit(rows.iloc[:0], [], eval_set=(rows, credit_frame["label"].iloc[:5]))
    with pytest.raises(YidaiError, match="unknown features"):
        _fit(credit_frame, feature_names, {"no_such_feature_30d": 1})


def test_calibrators_round_trip() -> None:
    rng = np.random.default_rng(0)
    margin = rng.normal(size=5000)
    y = (rng.uniform(size=5000) < 1 / (1 + np.exp(-(2 * margin - 1)))).astype(int)
    platt = PlattCalibrator.fit(margin, y)
    assert platt.a == pytest.approx(2, rel=0.15) and platt.b == pytest.approx(-1, abs=0.15)
    iso = IsotonicCalibrator.fit(margin, y)
    for cal in (platt, iso):
        again = calibrator_from_dict(cal.to_dict())
        assert np.allclose(again.predict(margin), cal.predict(margin))
        assert (np.diff(cal.predict(np.sort(margin))) >= 0).all()
    with pytest.raises(YidaiError, match="single class"):
        PlattCalibrator.fit(margin, np.zeros(5000))


def test_isotonic_calibration_keeps_the_ranking_and_the_level() -> None:
    """Centred isotonic: the PD rises strictly with the margin between the first and last
    knots, so held-out applicants keep the margin's ranking (a step function tied them)."""
    rng = np.random.default_rng(3)
    margin = rng.normal(size=20_000)
    y = (rng.uniform(size=margin.size) < 1 / (1 + np.exp(-(1.5 * margin - 3)))).astype(int)
    iso = IsotonicCalibrator.fit(margin[:10_000], y[:10_000])
    assert (np.diff(iso.knots_x) > 0).all() and (np.diff(iso.knots_y) > 0).all()
    held_out = (margin[10_000:] > iso.knots_x[0]) & (margin[10_000:] < iso.knots_x[-1])
    m, t = margin[10_000:][held_out], y[10_000:][held_out]
    p = iso.predict(m)
    above_floor = p > iso.min_prob  # the clip to min_prob ties the very lowest PDs only
    assert above_floor.mean() > 0.9
    assert np.unique(p[above_floor]).size == np.unique(m[above_floor]).size  # no ties made
    assert auc(t, p) == pytest.approx(auc(t, m), abs=1e-12)
    assert p.mean() == pytest.approx(t.mean(), rel=0.1)
    # plain isotonic regression, a step function, ties most of them
    steps = IsotonicRegression(out_of_bounds="clip").fit(margin[:10_000], y[:10_000]).predict(m)
    assert np.unique(steps).size < 0.05 * np.unique(p).size


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_anchoring_the_level_moves_the_mean_pd_and_keeps_the_ranking(method: str) -> None:
    rng = np.random.default_rng(5)
    margin = rng.normal(size=8000)
    y = (rng.uniform(size=margin.size) < 1 / (1 + np.exp(-(1.2 * margin - 4)))).astype(int)
    window = fit_calibrator(method, margin, y)  # type: ignore[arg-type]
    anchored = anchor_level(window, margin, 0.08)
    p_window, p_anchored = window.predict(margin), anchored.predict(margin)
    assert p_window.mean() == pytest.approx(y.mean(), rel=0.05) and y.mean() < 0.08 / 1.5
    assert p_anchored.mean() == pytest.approx(0.08, rel=1e-3 if method == "platt" else 0.02)
    assert auc(y, p_anchored) == pytest.approx(auc(y, p_window), abs=1e-9)
    again = calibrator_from_dict(anchored.to_dict())
    assert np.allclose(again.predict(margin), p_anchored)
    if method == "platt":
        assert anchored.to_dict()["a"] == window.to_dict()["a"]  # the slope is kept
    with pytest.raises(YidaiError, match="anchor rate"):
        anchor_level(window, margin, 0.0)


def test_scorecard_points_and_grades() -> None:
    card = Scorecard()  # 600 at 50:1, PDO 20
    assert card.points(1 / 51) == pytest.approx(600)
    assert card.points(1 / 101) == pytest.approx(620, abs=0.5)  # odds 100:1 = double
    assert card.points(1 / 26) == pytest.approx(580, abs=0.5)  # odds 25:1 = half
    assert card.pd_at(card.points(0.03)) == pytest.approx(0.03)
    grades = card.grade(np.array([0.001, 0.005, 0.0051, 0.03, 0.5]))
    assert list(grades) == ["A", "A", "B", "D", "G"]
    custom = Scorecard(base_score=500, base_odds=20, pdo=40)
    assert custom.points(1 / 21) == pytest.approx(500)
    assert Scorecard.from_dict(custom.to_dict()) == custom
    with pytest.raises(YidaiError):
        Scorecard(grade_bounds=(("A", 0.1), ("B", 0.05)))


def test_reason_codes_name_the_risk_raising_groups(
    fitted: GradientBoostedPD, credit_frame: pd.DataFrame, feature_names: list[str]
) -> None:
    assert reason_group_of("customer_dpd_max_180d").name == "delinquency"
    assert reason_group_of("customer_whatever_30d", declared="bills").name == "bill_payments"
    coder = ReasonCoder(feature_names)
    # The riskiest applicant by past delinquency: delinquency is the first reason.
    X = credit_frame[feature_names].copy()
    X.loc[:, :] = X.median().to_numpy()
    X = X.iloc[:2]
    X.loc[X.index[0], "customer_dpd_max_180d"] = 6.0
    X.loc[X.index[1], "customer_util_ratio_now"] = 1.0
    reasons = coder.reasons(fitted.contributions(X), top_k=2)
    assert reasons[0][0].code == "R01" and reasons[0][0].feature == "customer_dpd_max_180d"
    assert reasons[1][0].code == "R02" and "授信" in reasons[1][0].text_zh
    assert all(r.contribution > 0 for row in reasons for r in row)
    # A very safe applicant has no adverse reason at all.
    safe = X.iloc[:1].copy()
    safe.loc[:, "customer_dpd_max_180d"] = 0.0
    safe.loc[:, "customer_util_ratio_now"] = 0.0
    safe.loc[:, "customer_spend_avg_90d"] = 3.0
    safe.loc[:, "customer_bill_ontime_share_180d"] = 3.0
    assert coder.reasons(fitted.contributions(safe))[0] == [] or all(
        r.contribution < 0.05 for r in coder.reasons(fitted.contributions(safe))[0]
    )


def test_a_missing_input_is_a_no_history_reason_not_its_groups_fact() -> None:
    """A payee never seen has no fraud rate (NaN): its push towards fraud reads as thin
    history (R36), not as "recent fraud reports" (R11), which only real reports may raise."""
    names = ["counterpart_fraud_rate_30d", "payer_new_device_now", "counterpart_fraud_reports_7d"]
    groups = dict(zip(names, ["counterpart_risk", "new_device", "counterpart_risk"], strict=True))
    coder = ReasonCoder(names, groups)
    contrib = np.array([[1.0, 0.8, 0.3], [1.0, 0.8, 0.3]])
    blind = coder.reasons(contrib)
    assert [(r.code, r.feature) for r in blind[0]] == [
        ("R11", "counterpart_fraud_rate_30d"), ("R09", "payer_new_device_now")]  # fmt: skip
    values = np.array([[np.nan, 1.0, 0.0], [0.2, 1.0, 0.0]])
    seen = coder.reasons(contrib, values=values)
    assert [(r.code, r.feature, r.contribution) for r in seen[0]] == [
        ("R36", "counterpart_fraud_rate_30d", 1.0),
        ("R09", "payer_new_device_now", 0.8),
        ("R11", "counterpart_fraud_reports_7d", 0.3),
    ]
    assert "history" in seen[0][0].text_en and "历史" in seen[0][0].text_zh
    assert seen[1] == blind[1]  # nothing missing: unchanged
    with pytest.raises(YidaiError, match="values have shape"):
        coder.reasons(contrib, values=values[:, :2])


def test_auto_calibration_is_chosen_out_of_time() -> None:
    """Platt when the margin's log-odds are linear; isotonic when they are not (a steep
    rise to a plateau)."""
    rng = np.random.default_rng(11)
    margin = rng.normal(size=40_000)
    linear = (rng.uniform(size=margin.size) < 1 / (1 + np.exp(-(margin - 3)))).astype(int)
    assert choose_calibration(margin, linear) == "platt"
    step = 0.01 + 0.29 / (1 + np.exp(-8 * (margin - 1.0)))
    stepped = (rng.uniform(size=margin.size) < step).astype(int)
    assert choose_calibration(margin, stepped) == "isotonic"
    assert fit_calibrator("auto", margin, stepped).to_dict()["method"] == "isotonic"
    # too few events in a half: Platt
    few = np.zeros(100, dtype=int)
    few[[10, 20]] = 1
    assert choose_calibration(rng.normal(size=100), few) == "platt"


def test_isotonic_must_beat_platt_by_one_standard_error_per_borrower() -> None:
    """The one-standard-error rule, with a borrower's rows as one draw: eight identical
    rows per borrower make a win that looks significant row by row (isotonic) a small one
    per borrower (Platt, the simpler); a clear win is isotonic either way."""
    rng = np.random.default_rng(0)
    n_borrowers, rows_each = 3000, 8
    once = rng.normal(size=n_borrowers)
    pd_true = 0.02 + 0.2 / (1 + np.exp(-6 * (once - 1.0)))
    defaulted = (rng.uniform(size=n_borrowers) < pd_true).astype(int)
    margin, y = np.repeat(once, rows_each), np.repeat(defaulted, rows_each)
    borrower = np.repeat(np.arange(n_borrowers), rows_each)
    assert choose_calibration(margin, y) == "isotonic"
    assert choose_calibration(margin, y, borrower) == "platt"
    assert fit_calibrator("auto", margin, y, borrower).to_dict()["method"] == "platt"
    # a steep rise to a plateau over many borrowers: isotonic whichever way it is counted
    big = rng.normal(size=40_000)
    stepped = (rng.uniform(size=big.size) < 0.01 + 0.29 / (1 + np.exp(-8 * (big - 1.0)))).astype(
        int
    )
    assert choose_calibration(big, stepped, np.arange(big.size) // 2) == "isotonic"
    with pytest.raises(YidaiError, match="3 calibration groups for 24000 scores"):
        choose_calibration(margin, y, borrower[:3])
