"""The linear companion of the gradient-boosted PD (issue 18): normal scores, the signed L2
logistic margin, the blend, its storage and its contributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri
from scipy.stats import kstest
from sklearn.decomposition import FactorAnalysis

from models.estimator import GradientBoostedPD
from models.linear import (
    C_GRID,
    N_LEVELS,
    LinearFactor,
    MarginBlend,
    NormalScores,
    OrdinalScaling,
    fit_linear_factor,
    fit_linear_margin,
    hinge_basis,
    scale_factor,
)
from models.metrics import auc
from models.registry import LoadedModel
from models.scorecard import Scorecard
from yidai.core.errors import YidaiError


def test_normal_scores_are_standard_normal_monotone_and_fill_the_median() -> None:
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.lognormal(8, 1.5, 5000), rng.integers(0, 3, 5000).astype(float)])
    X[rng.random(5000) < 0.1, 0] = np.nan
    scores = NormalScores.fit(X)
    Z = scores.transform(X)
    skewed = Z[~np.isnan(X[:, 0]), 0]
    assert kstest(skewed, "norm").statistic < 0.03  # a lognormal amount, made normal
    grid = np.linspace(0, 1e6, 200)[:, None] * np.ones((1, 2))
    assert np.all(np.diff(scores.transform(grid)[:, 0]) >= 0)  # order kept
    # a missing value scores as the training median; a tie scores as its levels' middle
    assert Z[np.isnan(X[:, 0]), 0] == pytest.approx(0.0, abs=0.03)
    ties = scores.transform(np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]))[:, 1]
    assert ties[0] < -0.8 and abs(ties[1]) < 0.2 and ties[2] > 0.8
    # the levels are np.interp's, up and down averaged (below, between, on and above the
    # quantiles), and one row scores as it does in a batch (the service scores one)
    rows = np.vstack([X[:3000], [[-1.0, -1.0], [1e12, 9.0], [X[1, 0], 1.0]]])
    filled = np.where(np.isnan(rows), scores.fill, rows)
    grid = np.linspace(0, 1, N_LEVELS)
    reference = np.column_stack(
        [
            0.5 * (np.interp(x, q, grid) - np.interp(-x, -q[::-1], -grid[::-1]))
            for x, q in zip(filled.T, scores.quantiles.T, strict=True)
        ]
    )
    np.testing.assert_allclose(ndtri(np.clip(reference, 1e-7, 1 - 1e-7)), scores.transform(rows))
    one_by_one = np.vstack([scores.transform(row[None, :]) for row in rows[:50]])
    np.testing.assert_array_equal(one_by_one, scores.transform(rows)[:50])


def test_the_linear_margin_is_signed_as_the_monotone_constraints_and_chooses_c() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(0, 1, (4000, 3))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(-3 + 1.0 * X[:, 0] + 0.6 * X[:, 1])))).astype(float)
    held = (X[:2000], y[:2000])
    free = fit_linear_margin(X[2000:], y[2000:], signs=[0, 0, 0], eval_set=held)
    assert free.coef[0] > 0.5 and free.coef[1] > 0.3 and free.C in C_GRID
    # the second feature raises risk; a constraint saying it lowers it pins it at zero
    signed = fit_linear_margin(X[2000:], y[2000:], signs=[1, -1, 0], eval_set=held)
    assert signed.coef[0] > 0.5 and signed.coef[1] == 0.0
    fixed = fit_linear_margin(X[2000:], y[2000:], signs=[0, 0, 0], C=0.001)
    assert fixed.C == 0.001 and abs(fixed.coef).sum() < abs(free.coef).sum()  # shrunk
    with pytest.raises(YidaiError, match="needs C or an eval_set"):
        fit_linear_margin(X, y, signs=[0, 0, 0])
    with pytest.raises(YidaiError, match="2 monotone signs for 3 features"):
        fit_linear_margin(X, y, signs=[0, 0], C=1.0)


def _noisy_traces(n: int, seed: int) -> pd.DataFrame:
    """One latent state seen through many noisy traces, few defaults: the lines' shape
    (``state`` is the truth, not a feature)."""
    rng = np.random.default_rng(seed)
    state = rng.normal(0, 1, n)
    frame = pd.DataFrame(
        {f"trace_{j}": state + rng.normal(0, 2.0, n) for j in range(12)}
        | {"noise": rng.normal(0, 1, n)}
    )
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-(-4.2 - 1.4 * state)))).astype(int)
    frame["state"] = state
    return frame


def _features(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("label", "state")]


def _assert_served_as_fitted(model: GradientBoostedPD, names: list[str], X: np.ndarray) -> None:
    """A registered version's metadata (the blend as plain numbers) scores ``X`` as the
    fitted model does: PDs and contributions."""
    assert model.blend_ is not None
    served = LoadedModel(
        name="noisy_pd",
        version="1",
        alias=None,
        run_id="r",
        booster=model.booster_,
        metadata={
            "feature_set": "noisy_v1",
            "feature_set_version": "fp",
            "feature_names": names,
            "calibrator": model.calibrator_.to_dict(),
            "blend": model.blend_.to_dict(),
            "scorecard": Scorecard().to_dict(),
        },
    )
    np.testing.assert_allclose(served.predict_pd(X), model.predict_pd(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(served.contributions(X), model.contributions(X), atol=1e-12)


def test_a_blend_ranks_many_noisy_traces_better_and_serves_as_fitted() -> None:
    train, cal, test = (_noisy_traces(n, seed) for n, seed in ((8000, 1), (4000, 2), (20000, 3)))
    names = _features(train)
    monotone = {f"trace_{j}": -1 for j in range(12)}

    def fit(weight: float) -> GradientBoostedPD:
        model = GradientBoostedPD(monotone=monotone, linear_weight=weight, n_estimators=300)
        return model.fit(train[names], train["label"], eval_set=(cal[names], cal["label"]))

    trees, blended = fit(0.0), fit(0.5)
    assert trees.blend_ is None and blended.blend_ is not None
    assert (blended.blend_.linear.coef[:12] <= 0).all()  # signed as the constraints
    y = test["label"].to_numpy()
    gain = auc(y, blended.predict_pd(test[names])) - auc(y, trees.predict_pd(test[names]))
    assert gain > 0.005, gain
    assert blended.get_params()["linear_weight"] == 0.5
    with pytest.raises(YidaiError, match=r"linear_weight must be within 0\.\.1"):
        GradientBoostedPD(linear_weight=1.5).fit(
            train[names], train["label"], eval_set=(cal[names], cal["label"])
        )

    # contributions add up to the blended margin (up to one constant: the average row's)
    X = test[names].to_numpy()[:500]
    offset = blended.decision_function(X) - blended.contributions(X).sum(axis=1)
    assert np.ptp(offset) < 1e-6
    # stored as plain numbers and served the same: PDs and reasons
    assert blended.blend_ is not None
    stored = MarginBlend.from_dict(blended.blend_.to_dict())
    np.testing.assert_allclose(
        stored.combine(blended._trees_margin(X), X), blended.decision_function(X), atol=1e-12
    )
    _assert_served_as_fitted(blended, names, X)
    with pytest.raises(YidaiError, match="margin blend is malformed"):
        MarginBlend.from_dict({"weight": 0.5})


KNOTS = (-1.5, -0.5, 0.5, 1.5)


def test_hinge_pieces_rise_and_add_up_to_the_score() -> None:
    z = np.linspace(-4, 4, 81)[:, None]
    pieces = hinge_basis(z, KNOTS)
    assert pieces.shape == (81, len(KNOTS) + 1)
    assert (np.diff(pieces, axis=0) >= 0).all()  # each piece never falls
    np.testing.assert_allclose(pieces.sum(axis=1), z[:, 0] - KNOTS[0])
    assert hinge_basis(z, ()) is z


def test_knots_let_a_tail_weigh_more_and_keep_every_segment_signed() -> None:
    """Risk jumps past a threshold of the first feature (a collapse): the piecewise part
    learns it, every slope keeps the constraint's sign, and it stores and serves as fitted."""
    rng = np.random.default_rng(11)
    X = rng.normal(0, 1, (24000, 3))
    logit = -3.5 + np.where(X[:, 0] > 1.2, 2.5, 0.2 * X[:, 0]) + 0.5 * X[:, 1]
    y = (rng.random(24000) < 1 / (1 + np.exp(-logit))).astype(float)
    fit_rows, held, test = slice(0, 8000), slice(8000, 12000), slice(12000, None)
    common = {"signs": [1, 1, 0], "eval_set": (X[held], y[held])}
    straight = fit_linear_margin(X[fit_rows], y[fit_rows], **common)  # type: ignore[arg-type]
    bent = fit_linear_margin(X[fit_rows], y[fit_rows], knots=KNOTS, **common)  # type: ignore[arg-type]
    assert bent.knots == KNOTS and bent.coef.shape == (3 * (len(KNOTS) + 1),)
    slopes = bent.coef.reshape(len(KNOTS) + 1, 3)  # segment by feature
    assert (slopes[:, :2] >= 0).all()
    assert slopes[3, 0] > 3 * slopes[1, 0]  # the segment holding the threshold is the steepest
    gain = auc(y[test], bent.margin(X[test])) - auc(y[test], straight.margin(X[test]))
    assert gain > 0.005, gain
    offset = bent.margin(X[:300]) - bent.contributions(X[:300]).sum(axis=1)
    assert np.ptp(offset) < 1e-9 and bent.contributions(X[:300]).shape == (300, 3)

    blend = MarginBlend.standardised_on(bent, 0.85, rng.normal(size=500), X[:500])
    stored = blend.to_dict()
    trees = rng.normal(size=300)
    np.testing.assert_array_equal(
        MarginBlend.from_dict(stored).combine(trees, X[:300]), blend.combine(trees, X[:300])
    )
    # a blend stored before knots existed has none
    plain = MarginBlend.standardised_on(straight, 0.5, trees, X[:300]).to_dict()
    plain.pop("knots")
    assert MarginBlend.from_dict(plain).linear.knots == ()
    with pytest.raises(YidaiError, match="15 coefficients for 3 features and 0 knots"):
        MarginBlend.from_dict(stored | {"knots": []})
    with pytest.raises(YidaiError, match="knots must increase"):
        fit_linear_margin(X[:100], y[:100], signs=[0, 0, 0], C=1.0, knots=(0.5, -0.5))


def test_the_factor_is_the_common_factor_of_the_scores_turned_to_rise_with_risk() -> None:
    frame = _noisy_traces(6000, 5)
    names = _features(frame)
    scores = NormalScores.fit(frame[names].to_numpy())
    Z = scores.transform(frame[names].to_numpy())
    lower_is_riskier = np.r_[-np.ones(12), 0.0]  # the traces lower risk; the noise is free
    factor = fit_linear_factor(Z, lower_is_riskier)
    # sklearn's own factor scores, up to the sign turned to the direction
    reference = FactorAnalysis(n_components=1, random_state=0).fit(Z).transform(Z)[:, 0]
    np.testing.assert_allclose(np.abs(factor.margin(Z)), np.abs(reference), atol=1e-9)
    assert (factor.coef[:12] < 0).all() and abs(factor.coef[12]) < 0.2 * abs(factor.coef[0])
    # rises with risk, as near the state as twelve traces of noise sd 2 allow: 1/sqrt(1 + 4/12)
    assert np.corrcoef(factor.margin(Z), -frame["state"])[0, 1] > 0.85
    flipped = fit_linear_factor(Z, -lower_is_riskier)
    np.testing.assert_allclose(flipped.coef, -factor.coef)
    np.testing.assert_allclose(factor.contributions(Z).sum(axis=1), factor.margin(Z))
    with pytest.raises(YidaiError, match="13 features needs as many directions"):
        fit_linear_factor(Z, np.ones(3))


def test_a_factor_in_the_blend_ranks_closer_to_the_truth_and_serves_as_fitted() -> None:
    """Few defaults, many noisy traces: the label-free factor carries the state the labels
    teach the linear part only roughly."""
    train, cal, test = (_noisy_traces(n, seed) for n, seed in ((8000, 1), (4000, 2), (20000, 3)))
    names = _features(train)
    monotone = {f"trace_{j}": -1 for j in range(12)}

    def fit(factor_weight: float) -> GradientBoostedPD:
        model = GradientBoostedPD(
            monotone=monotone, linear_weight=0.85, factor_weight=factor_weight, n_estimators=300
        )
        return model.fit(train[names], train["label"], eval_set=(cal[names], cal["label"]))

    without, with_factor = fit(0.0), fit(0.5)
    assert without.blend_ is not None and without.blend_.factor is None
    assert with_factor.blend_ is not None and with_factor.blend_.factor is not None
    risk = -test["state"].to_numpy()

    def agreement(model: GradientBoostedPD) -> float:
        return float(np.corrcoef(model.decision_function(test[names]), risk)[0, 1])

    assert agreement(with_factor) > agreement(without) + 0.005, (
        agreement(with_factor),
        agreement(without),
    )
    assert with_factor.get_params()["factor_weight"] == 0.5

    X = test[names].to_numpy()[:500]
    offset = with_factor.decision_function(X) - with_factor.contributions(X).sum(axis=1)
    assert np.ptp(offset) < 1e-6
    _assert_served_as_fitted(with_factor, names, X)
    stored = with_factor.blend_.to_dict()
    # a blend stored before the factor existed has none
    older = without.blend_.to_dict()
    older.pop("factor")
    assert MarginBlend.from_dict(older).factor is None
    short = stored | {"factor": stored["factor"] | {"coef": [1.0, 2.0]}}
    with pytest.raises(YidaiError, match="factor needs 13 coefficients"):
        MarginBlend.from_dict(short)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"linear_weight": 0.5, "factor_weight": 1.5}, r"factor_weight must be within 0\.\.1"),
        ({"linear_weight": 0.0, "factor_weight": 0.5}, r"factor_weight needs a linear part"),
    ],
)
def test_a_factor_weight_out_of_range_or_without_a_linear_part_is_refused(
    params: dict[str, float], message: str
) -> None:
    frame = _noisy_traces(2000, 6)
    names = _features(frame)
    with pytest.raises(YidaiError, match=message):
        GradientBoostedPD(**params).fit(  # type: ignore[arg-type]
            frame[names], frame["label"], eval_set=(frame[names], frame["label"])
        )


def test_an_ordinal_scaling_maps_levels_linearly_and_missing_cells_to_their_fill() -> None:
    values = np.column_stack([np.linspace(-1, 1, N_LEVELS), np.linspace(0, 10, N_LEVELS) ** 2])
    scaling = OrdinalScaling(values, np.array([5.0, -5.0]))
    levels = np.array([[0.0, 1.0], [0.5, 0.015], [0.255, 0.5]])
    missing = np.array([[False, False], [False, False], [True, False]])
    out = scaling.transform(levels, missing)
    np.testing.assert_allclose(out[0], [-1.0, 100.0])  # the ends
    np.testing.assert_allclose(out[1], [0.0, 0.5 * (0.1**2 + 0.2**2)])  # half-way: linear
    np.testing.assert_allclose(out[2], [5.0, 25.0])  # a missing cell takes the fill


def _threshold_traces(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four noisy traces of the state, and four events only a state past a point produces
    (below it they are all about zero, their order noise)."""
    rng = np.random.default_rng(seed)
    state = rng.normal(0, 1, 8000)
    traces = [state + rng.normal(0, 2.0, 8000) for _ in range(4)]
    events = [np.maximum(state - 0.5, 0) * 2 + rng.normal(0, 0.05, 8000) for _ in range(4)]
    return np.column_stack(traces + events), state


def test_scaling_the_factor_reads_a_threshold_from_the_other_features_without_labels() -> None:
    X, state = _threshold_traces(1)
    X[state < -1.2, 0] = np.nan  # the first trace is missing for the safest borrowers
    scores = NormalScores.fit(X)
    Z = scores.transform(X)
    factor = fit_linear_factor(Z, np.ones(8))
    assert scale_factor(X, scores, factor, 0) is factor
    scaled = scale_factor(X, scores, factor, 1)
    assert scaled.scaling is not None
    levels, missing = scores.levels(X), np.isnan(X)
    T = scaled.inputs(Z, levels, missing)

    def agreement(f: LinearFactor, inputs: np.ndarray) -> float:
        return float(np.corrcoef(f.margin(inputs), state)[0, 1])

    # the events' maps are flat where they are noise, so the factor follows the state better
    assert agreement(scaled, T) > agreement(factor, Z) + 0.004
    assert (np.diff(scaled.scaling.values, axis=0) >= -1e-12).all()  # every map rises here
    np.testing.assert_allclose(T.mean(axis=0), 0.0, atol=1e-9)  # standardised on training
    np.testing.assert_allclose(T.std(axis=0), 1.0, atol=1e-9)
    # a missing cell sits where the rows missing it score on average (low: they are the
    # safest), not at the median's value, where the normal scores put it
    assert T[missing[:, 0], 0][0] == pytest.approx(scaled.scaling.fill[0])
    median_value = scaled.scaling.values[(N_LEVELS - 1) // 2, 0]
    assert scaled.scaling.fill[0] < median_value - 0.5, (scaled.scaling.fill[0], median_value)


def test_a_scaled_factor_in_the_blend_stores_and_serves_as_fitted() -> None:
    X, state = _threshold_traces(2)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(8)])
    rng = np.random.default_rng(2)
    frame["label"] = (rng.random(len(frame)) < 1 / (1 + np.exp(-(-3.5 + 1.2 * state)))).astype(int)
    names = [f"f{j}" for j in range(8)]
    fit_rows, cal_rows = frame.iloc[:5000], frame.iloc[5000:]
    model = GradientBoostedPD(
        monotone=dict.fromkeys(names, 1),
        linear_weight=0.85,
        factor_weight=0.5,
        factor_scaling_rounds=2,
        n_estimators=100,
    ).fit(fit_rows[names], fit_rows["label"], eval_set=(cal_rows[names], cal_rows["label"]))
    assert model.blend_ is not None and model.blend_.factor is not None
    assert model.blend_.factor.scaling is not None
    assert model.get_params()["factor_scaling_rounds"] == 2
    rows = cal_rows[names].to_numpy()[:400].copy()
    rows[::5, 3] = np.nan
    _assert_served_as_fitted(model, names, rows)
    stored = model.blend_.to_dict()
    assert stored["factor"]["scaling"] is not None
    broken = stored | {"factor": stored["factor"] | {"scaling": {"values": [[0.0]], "fill": []}}}
    with pytest.raises(YidaiError, match="scaling needs 101 levels and a fill for each of 8"):
        MarginBlend.from_dict(broken)
