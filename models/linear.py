"""The linear companion of a gradient-boosted PD: an L2 logistic regression on normal scores,
blended with the trees' margin (issue 18).

Why: on the simulator's five benchmark worlds the credit models' learning gap (a regression
on the truth from the same features minus the model) was as large as their observation gap.
The trees, grown from a few hundred defaulting borrowers, rank each borrower's many noisy
traces of one latent state worse than a linear score of them. The blend was better out of
time than either on its own; its weight is per product (``models.training.LINEAR_WEIGHTS``;
docs/benchmarks.md, issue 18, seventh session).

* :class:`NormalScores`: each feature through its training quantiles to a standard normal
  score (missing values at the training median), so that one coefficient per feature
  suits skewed amounts and bounded ratios alike;
* :class:`LinearMargin`: ``basis(score) @ coef + intercept``, fitted by L2-penalised log loss
  (``sum(log loss) + |coef|^2 / (2 C)``, as scikit-learn's ``C``), each coefficient bounded
  to the sign of its feature's monotone constraint, ``C`` chosen on a held-out window.  The
  basis is the score itself, or with ``knots`` one slope per segment between them
  (:func:`hinge_basis`): a monotone piecewise-linear effect per feature, which lets a
  feature's tail (a collapsed turnover, a burst of refunds) weigh more than its middle (an
  option no product uses by default: docs/benchmarks.md, issue 18, eighth session);
* :class:`LinearFactor`: a label-free score, the one common factor of the features' normal
  scores (factor analysis), turned to rise with risk as the linear part does.  It knows
  nothing of the labels, so the few hundred defaulting borrowers of a line cannot bend it:
  blended in, it ranked the lines closer to the truth (docs/benchmarks.md, issue 18,
  fourteenth and fifteenth sessions).  :func:`scale_factor` can then give each feature the
  monotone shape the factor reads it with (:class:`OrdinalScaling`, still without labels);
* :class:`MarginBlend`: ``(1 - f) * ((1 - w) * z(trees) + w * z(linear)) + f * z(factor)``,
  each margin standardised on the calibration window, so a weight means a share of the
  ranking.

Everything the service needs is plain numbers (:meth:`MarginBlend.to_dict`), stored with
the booster in the registered version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from yidai.core.errors import YidaiError

N_LEVELS = 101  # quantile levels of a normal-score map (0, 1, ..., 100 %)
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 1.0)
_EDGE = 1e-7  # a score's probability level is kept within [_EDGE, 1 - _EDGE]
_ROWS_PER_PASS = 2048  # rows compared with every quantile at once (bounded memory)


@dataclass(frozen=True)
class NormalScores:
    """Per feature: ``Phi^-1(F(x))``, ``F`` the training distribution (its ``N_LEVELS``
    quantiles, linear between them; ties get their mid level), missing values at ``fill``."""

    quantiles: np.ndarray  # (N_LEVELS, n_features)
    fill: np.ndarray  # (n_features,) training medians

    @classmethod
    def fit(cls, X: np.ndarray) -> NormalScores:
        """The quantiles of each column's present values (a column never present: zeros)."""
        empty = np.isnan(X).all(axis=0)
        present = np.where(empty, 0.0, X)
        quantiles = np.nanquantile(present, np.linspace(0, 1, N_LEVELS), axis=0)
        return cls(quantiles, np.nanmedian(present, axis=0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.of_levels(self.levels(X))

    def levels(self, X: np.ndarray) -> np.ndarray:
        """``F(x)`` per cell, within 0..1 (a missing value at the median's level)."""
        filled = np.where(np.isnan(X), self.fill, X)
        levels = np.empty(filled.shape, dtype=np.float64)
        for lo in range(0, len(filled), _ROWS_PER_PASS):
            levels[lo : lo + _ROWS_PER_PASS] = self._levels(filled[lo : lo + _ROWS_PER_PASS])
        return levels

    @staticmethod
    def of_levels(levels: np.ndarray) -> np.ndarray:
        """The normal scores of :meth:`levels`."""
        # heavy: scipy (only a blended model needs it)
        from scipy.special import ndtri

        return np.asarray(ndtri(np.clip(levels, _EDGE, 1 - _EDGE)))

    def _levels(self, x: np.ndarray) -> np.ndarray:
        """``F(x)`` per cell: linear between the quantiles, up from the left and down from
        the right averaged (a value tied over several quantiles gets the middle of their
        levels).  All columns at once, the same arithmetic for one row as for many (a
        loop of ``np.interp`` per column cost 0.25 ms per served row)."""
        q = self.quantiles
        last = q.shape[0] - 1
        step = 1.0 / last
        cols = np.arange(q.shape[1])[None, :]
        at_or_below = (q[None, :, :] <= x[:, None, :]).sum(axis=1)
        below = (q[None, :, :] < x[:, None, :]).sum(axis=1)
        # from the left: q[i] <= x < q[i + 1]
        i = np.clip(at_or_below - 1, 0, last - 1)
        left, right = q[i, cols], q[i + 1, cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            up = (i + (x - left) / (right - left)) * step
            # from the right: q[j - 1] < x <= q[j]
            j = np.clip(below, 1, last)
            left, right = q[j - 1, cols], q[j, cols]
            down = (j - (right - x) / (right - left)) * step
        up = np.where(at_or_below == 0, 0.0, np.where(at_or_below > last, 1.0, up))
        down = np.where(below == 0, 0.0, np.where(below > last, 1.0, down))
        return np.asarray(0.5 * (up + down))


def hinge_basis(Z: np.ndarray, knots: Sequence[float]) -> np.ndarray:
    """Each column of ``Z`` split at ``knots`` (increasing) into one increasing piece per
    segment: ``min(z - k1, 0)``, ``clip(z, k_i, k_i+1) - k_i`` ..., ``max(z - k_last, 0)``;
    the pieces sum to ``z - k1``.  Columns are segment-major: all features' first piece,
    then all features' second ...  No knots: ``Z`` itself."""
    if not knots:
        return Z
    k = np.asarray(knots, dtype=np.float64)
    lower = np.concatenate([[-np.inf], k])[:, None]  # (segments, 1)
    upper = np.concatenate([k, [np.inf]])[:, None]
    origin = np.concatenate([k[:1], k])[:, None]  # the first piece is 0 from k1 up
    pieces = np.minimum(np.maximum(Z[:, None, :], lower), upper) - origin
    return pieces.reshape(len(Z), -1)  # three ufunc calls: a served row pays little for them


@dataclass(frozen=True)
class LinearMargin:
    """``hinge_basis(NormalScores(x), knots) @ coef + intercept``: log-odds of default
    (unweighted classes); one coefficient per feature and segment."""

    scores: NormalScores
    coef: np.ndarray
    intercept: float
    C: float
    center: np.ndarray  # mean training basis per column (contributions are relative to it)
    knots: tuple[float, ...] = ()

    def margin(self, X: np.ndarray) -> np.ndarray:
        return self.margin_of_scores(self.scores.transform(X))

    def margin_of_scores(self, Z: np.ndarray) -> np.ndarray:
        """The margin of rows whose normal scores are ``Z``."""
        return np.asarray(hinge_basis(Z, self.knots) @ self.coef + self.intercept)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return self.contributions_of_scores(self.scores.transform(X))

    @property
    def slopes(self) -> np.ndarray:
        """Each feature's coefficient (summed over its segments with knots)."""
        n_features = self.scores.quantiles.shape[1]
        return np.asarray(self.coef.reshape(-1, n_features).sum(axis=0))

    def contributions_of_scores(self, Z: np.ndarray) -> np.ndarray:
        """Each feature's share of the margin against the average training row (the sum
        over its segments), for rows whose normal scores are ``Z``."""
        parts = (hinge_basis(Z, self.knots) - self.center) * self.coef
        if not self.knots:
            return np.asarray(parts)
        n_features = self.scores.quantiles.shape[1]
        return np.asarray(parts.reshape(len(parts), -1, n_features).sum(axis=1))


def _fit_logistic(
    Z: np.ndarray, y: np.ndarray, C: float, bounds: list[tuple[float | None, float | None]]
) -> tuple[np.ndarray, float]:
    """Minimise ``sum(log loss) + |coef|^2 / (2 C)`` within ``bounds`` (L-BFGS-B)."""
    # heavy: scipy
    from scipy.optimize import minimize
    from scipy.special import expit

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, b = theta[:-1], theta[-1]
        t = Z @ coef + b
        # log(1 + e^t) - y t, stably
        value = float(np.sum(np.logaddexp(0.0, t) - y * t) + coef @ coef / (2 * C))
        residual = expit(t) - y
        return value, np.append(Z.T @ residual + coef / C, residual.sum())

    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    start = np.append(np.zeros(Z.shape[1]), np.log(rate / (1 - rate)))
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[*bounds, (None, None)])
    return np.asarray(result.x[:-1]), float(result.x[-1])


def _log_loss(y: np.ndarray, margin: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, margin) - y * margin))


def fit_linear_margin(
    X: np.ndarray,
    y: np.ndarray,
    *,
    signs: Sequence[int],
    eval_set: tuple[np.ndarray, np.ndarray] | None = None,
    C: float | None = None,
    knots: Sequence[float] = (),
) -> LinearMargin:
    """Fit the linear margin on ``(X, y)``; ``signs`` per column (+1: the coefficients are
    >= 0, -1: <= 0, 0: free; the trees' monotone constraints, held by every segment's slope
    when there are ``knots``, so each feature's effect stays monotone); ``C`` given, or the
    value of ``C_GRID`` with the lowest log loss on ``eval_set``."""
    if C is None and eval_set is None:
        raise YidaiError("fit_linear_margin needs C or an eval_set to choose it on")
    if len(signs) != X.shape[1]:
        raise YidaiError(f"{len(signs)} monotone signs for {X.shape[1]} features")
    knots = tuple(float(k) for k in knots)
    if any(b <= a for a, b in pairwise(knots)):
        raise YidaiError(f"the linear part's knots must increase, got {list(knots)}")
    scores = NormalScores.fit(X)
    Z = hinge_basis(scores.transform(X), knots)
    per_feature: list[tuple[float | None, float | None]] = [
        (0.0, None) if s > 0 else (None, 0.0) if s < 0 else (None, None) for s in signs
    ]
    bounds = per_feature * (len(knots) + 1)  # segment-major, as the basis
    candidates = (C,) if C is not None else C_GRID
    best: tuple[float, LinearMargin] | None = None
    for c in candidates:
        coef, intercept = _fit_logistic(Z, y, float(c), bounds)
        fitted = LinearMargin(scores, coef, intercept, float(c), Z.mean(axis=0), knots)
        if eval_set is None:
            return fitted
        held_loss = _log_loss(eval_set[1], fitted.margin(eval_set[0]))
        if best is None or held_loss < best[0]:
            best = (held_loss, fitted)
    assert best is not None
    return best[1]


@dataclass(frozen=True)
class OrdinalScaling:
    """Per feature a monotone map of its level ``F(x)`` (:meth:`NormalScores.levels`) to a
    value: ``values[i, j]`` at level ``i / (N_LEVELS - 1)``, linear between the levels, and
    ``fill[j]`` for a missing value."""

    values: np.ndarray  # (N_LEVELS, n_features)
    fill: np.ndarray  # (n_features,)

    def transform(self, levels: np.ndarray, missing: np.ndarray) -> np.ndarray:
        position = levels * (N_LEVELS - 1)
        lo = np.clip(position.astype(np.int64), 0, N_LEVELS - 2)  # floor: levels are >= 0
        frac = position - lo
        cols = np.arange(self.values.shape[1])[None, :]
        inner = self.values[lo, cols] * (1 - frac) + self.values[lo + 1, cols] * frac
        return np.asarray(np.where(missing, self.fill, inner))


@dataclass(frozen=True)
class LinearFactor:
    """``(T - center) @ coef``: the factor score of the factor's inputs ``T`` (the regression
    estimate of a one-factor model's common factor: a fixed linear combination).  ``T`` is
    the normal scores, or with ``scaling`` each feature's optimally scaled value."""

    coef: np.ndarray
    center: np.ndarray  # mean training input per feature
    scaling: OrdinalScaling | None = None

    def inputs(self, scores: np.ndarray, levels: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """``T`` of rows whose normal scores, levels and missing cells are given."""
        return scores if self.scaling is None else self.scaling.transform(levels, missing)

    def margin(self, T: np.ndarray) -> np.ndarray:
        return np.asarray((T - self.center) @ self.coef)

    def contributions(self, T: np.ndarray) -> np.ndarray:
        return np.asarray((T - self.center) * self.coef)

    def to_dict(self) -> dict[str, Any]:
        scaling = self.scaling
        return {
            "coef": self.coef.tolist(),
            "center": self.center.tolist(),
            "scaling": None
            if scaling is None
            else {"values": scaling.values.T.tolist(), "fill": scaling.fill.tolist()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], n_features: int) -> LinearFactor:
        """A stored factor of ``n_features`` features (ValueError/KeyError if malformed)."""
        stored_scaling = data.get("scaling")  # none: a factor of normal scores
        scaling = None
        if stored_scaling:
            scaling = OrdinalScaling(
                np.asarray(stored_scaling["values"], dtype=np.float64).T,
                np.asarray(stored_scaling["fill"], dtype=np.float64),
            )
            if scaling.values.shape != (N_LEVELS, n_features) or scaling.fill.shape != (
                n_features,
            ):
                raise ValueError(
                    f"the factor's scaling needs {N_LEVELS} levels and a fill for each of "
                    f"{n_features} features"
                )
        factor = cls(
            np.asarray(data["coef"], dtype=np.float64),
            np.asarray(data["center"], dtype=np.float64),
            scaling,
        )
        if factor.coef.shape != (n_features,) or factor.center.shape != (n_features,):
            raise ValueError(f"the factor needs {n_features} coefficients and centres")
        return factor


def _one_factor(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The coefficients and centre of the factor score of a one-factor model of ``T``
    (scikit-learn's ``FactorAnalysis``: ``t = mean + loading * factor + noise``, one noise
    variance per column): ``E[factor | t] = (t - mean) @ psi^-1 loading / (1 + loading'
    psi^-1 loading)``; its sign is arbitrary."""
    # heavy: scikit-learn (only a model with a factor needs it)
    from sklearn.decomposition import FactorAnalysis

    model = FactorAnalysis(n_components=1, random_state=0).fit(T)
    loading = model.components_[0]
    precision_loading = loading / model.noise_variance_
    coef = precision_loading / (1.0 + loading @ precision_loading)
    return np.asarray(coef, dtype=np.float64), np.asarray(model.mean_, dtype=np.float64)


def fit_linear_factor(Z: np.ndarray, direction: np.ndarray) -> LinearFactor:
    """The one-factor model of the normal scores ``Z`` (:func:`_one_factor`).  The labels
    play no part; only the factor's arbitrary sign is turned so that its coefficients agree
    with ``direction`` (per feature: the linear part's slope, signed as the monotone
    constraints), i.e. so that it rises with risk."""
    if direction.shape != (Z.shape[1],):
        raise YidaiError(f"a factor of {Z.shape[1]} features needs as many directions")
    coef, center = _one_factor(Z)
    return LinearFactor(-coef if coef @ direction < 0 else coef, center)


def scale_factor(
    X: np.ndarray, scores: NormalScores, factor: LinearFactor, rounds: int
) -> LinearFactor:
    """Optimal scaling of a one-factor model (nonlinear principal components with ordinal
    scaling, as in Gifi's PRINCALS), without labels: each round maps every feature through
    the isotonic regression of the current factor score on it (rising or falling as the
    two correlate; a missing value at the mean score of the training rows missing it),
    standardises the maps and refits the factor on them, turned to agree with the previous
    score.  A feature whose risk is not linear in its normal score (a zero that means "no
    credit yet", a ratio that only matters past a point) gets the shape the other features
    agree on.  ``rounds`` 0: ``factor`` itself."""
    # heavy: scikit-learn (only a model with a scaled factor needs it)
    from sklearn.isotonic import IsotonicRegression

    levels, missing = scores.levels(X), np.isnan(X)
    current = factor.margin(factor.inputs(scores.of_levels(levels), levels, missing))
    for _ in range(rounds):
        values = np.zeros_like(scores.quantiles)
        fill = np.zeros(X.shape[1])
        for j in range(X.shape[1]):
            present = ~missing[:, j]
            x, score = X[present, j], current[present]
            if x.size < 2 or np.ptp(x) == 0:
                continue  # nothing to scale: the column stays at 0
            iso = IsotonicRegression(
                increasing=bool(np.corrcoef(x, score)[0, 1] >= 0), out_of_bounds="clip"
            ).fit(x, score)
            values[:, j] = iso.predict(scores.quantiles[:, j])
            fill[j] = (
                current[~present].mean()
                if (~present).any()
                else iso.predict(scores.fill[j : j + 1])[0]
            )
        T = OrdinalScaling(values, fill).transform(levels, missing)
        mean, sd = T.mean(axis=0), T.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        scaling = OrdinalScaling((values - mean) / sd, (fill - mean) / sd)
        T = (T - mean) / sd
        coef, center = _one_factor(T)
        if np.corrcoef((T - center) @ coef, current)[0, 1] < 0:
            coef = -coef
        factor = LinearFactor(coef, center, scaling)
        current = factor.margin(T)
    return factor


def _blend_inputs(
    linear: LinearMargin, factor: LinearFactor | None, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """The normal scores of rows ``X``, and what the factor reads (None: no factor): the
    quantile levels are computed once for both."""
    levels = linear.scores.levels(X)
    Z = linear.scores.of_levels(levels)
    return Z, None if factor is None else factor.inputs(Z, levels, np.isnan(X))


@dataclass(frozen=True)
class MarginBlend:
    """``(1 - factor_weight) * ((1 - weight) * z(trees) + weight * z(linear)) + factor_weight
    * z(factor)``, ``z(m) = (m - center) / scale`` of each margin on the calibration window:
    the blended log-odds the calibrator maps to a PD.  The factor reads the linear part's
    normal scores, or its own scaling of the same levels; a blend without one has
    ``factor`` None."""

    linear: LinearMargin
    weight: float
    trees_center: float
    trees_scale: float
    linear_center: float
    linear_scale: float
    factor: LinearFactor | None = None
    factor_weight: float = 0.0
    factor_center: float = 0.0
    factor_scale: float = 1.0

    @classmethod
    def standardised_on(
        cls,
        linear: LinearMargin,
        weight: float,
        trees_margin: np.ndarray,
        X: np.ndarray,
        *,
        factor: LinearFactor | None = None,
        factor_weight: float = 0.0,
    ) -> MarginBlend:
        """The blend with each margin's centre and scale taken on the rows ``X`` (whose
        trees' margins are ``trees_margin``): the calibration window."""
        Z, T = _blend_inputs(linear, factor, X)
        lin = linear.margin_of_scores(Z)
        fac = np.zeros(1) if factor is None or T is None else factor.margin(T)
        return cls(
            linear,
            float(weight),
            float(trees_margin.mean()),
            float(trees_margin.std() or 1.0),
            float(lin.mean()),
            float(lin.std() or 1.0),
            factor,
            float(factor_weight) if factor is not None else 0.0,
            float(fac.mean()),
            float(fac.std() or 1.0),
        )

    def _shares(self) -> tuple[float, float, float]:
        """The trees', linear part's and factor's weights on their standardised margins."""
        rest = 1.0 - self.factor_weight
        return rest * (1 - self.weight), rest * self.weight, self.factor_weight

    def combine(self, trees_margin: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The blended margin of rows ``X`` whose trees' margins are ``trees_margin``."""
        Z, T = _blend_inputs(self.linear, self.factor, X)
        w_trees, w_linear, w_factor = self._shares()
        trees = (np.asarray(trees_margin) - self.trees_center) / self.trees_scale
        lin = (self.linear.margin_of_scores(Z) - self.linear_center) / self.linear_scale
        blended = w_trees * trees + w_linear * lin
        if self.factor is not None and T is not None:
            blended += w_factor * (self.factor.margin(T) - self.factor_center) / self.factor_scale
        return np.asarray(blended)

    def contributions(self, trees_contrib: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the blended margin: the trees' (TreeSHAP), the
        linear part's and the factor's, each on its blended scale (their sum is the margin
        up to a constant)."""
        Z, T = _blend_inputs(self.linear, self.factor, X)
        w_trees, w_linear, w_factor = self._shares()
        parts = np.asarray(trees_contrib) * w_trees / self.trees_scale
        parts = parts + self.linear.contributions_of_scores(Z) * w_linear / self.linear_scale
        if self.factor is not None and T is not None:
            parts = parts + self.factor.contributions(T) * w_factor / self.factor_scale
        return np.asarray(parts)

    def to_dict(self) -> dict[str, Any]:
        lin = self.linear
        return {
            "weight": self.weight,
            "trees_center": self.trees_center,
            "trees_scale": self.trees_scale,
            "linear_center": self.linear_center,
            "linear_scale": self.linear_scale,
            "coef": lin.coef.tolist(),
            "intercept": lin.intercept,
            "C": lin.C,
            "center": lin.center.tolist(),
            "quantiles": lin.scores.quantiles.T.tolist(),  # one list of levels per feature
            "fill": lin.scores.fill.tolist(),
            "knots": list(lin.knots),
            "factor": None
            if self.factor is None
            else {
                "weight": self.factor_weight,
                "margin_center": self.factor_center,
                "margin_scale": self.factor_scale,
                **self.factor.to_dict(),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarginBlend:
        try:
            scores = NormalScores(
                np.asarray(data["quantiles"], dtype=np.float64).T,
                np.asarray(data["fill"], dtype=np.float64),
            )
            n_features = scores.quantiles.shape[1]
            linear = LinearMargin(
                scores,
                np.asarray(data["coef"], dtype=np.float64),
                float(data["intercept"]),
                float(data["C"]),
                np.asarray(data["center"], dtype=np.float64),
                tuple(float(k) for k in data.get("knots", ())),  # none: stored before knots
            )
            if linear.coef.size != n_features * (len(linear.knots) + 1):
                raise ValueError(
                    f"{linear.coef.size} coefficients for {n_features} features "
                    f"and {len(linear.knots)} knots"
                )
            stored_factor = data.get("factor")  # none: stored before the factor
            factor = LinearFactor.from_dict(stored_factor, n_features) if stored_factor else None
            return cls(
                linear,
                float(data["weight"]),
                float(data["trees_center"]),
                float(data["trees_scale"]),
                float(data["linear_center"]),
                float(data["linear_scale"]),
                factor,
                float(stored_factor["weight"]) if stored_factor else 0.0,
                float(stored_factor["margin_center"]) if stored_factor else 0.0,
                float(stored_factor["margin_scale"]) if stored_factor else 1.0,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise YidaiError(f"a stored margin blend is malformed: {exc}") from exc
