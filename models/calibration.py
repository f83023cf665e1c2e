"""Probability calibrators on a model's raw margin, stored as plain JSON-able numbers.

Both are fitted with scikit-learn but predict with numpy alone (a few microseconds per call),
so the scoring service needs neither pickles nor scikit-learn's input checks.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np

from yidai.core.errors import YidaiError

CalibrationMethod = Literal["platt", "isotonic", "auto"]
#: The methods ``"auto"`` chooses between.
CALIBRATION_METHODS: tuple[CalibrationMethod, ...] = ("platt", "isotonic")


class Calibrator(Protocol):
    """Maps raw margins (log-odds scale) to calibrated probabilities."""

    def predict(self, margin: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


def _check_fit_input(margin: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(margin, dtype=np.float64).ravel()
    t = np.asarray(y, dtype=np.float64).ravel()
    if m.size == 0 or m.size != t.size:
        raise YidaiError("calibration needs a non-empty held-out set with one label per score")
    if t.min() == t.max():
        raise YidaiError("calibration set has a single class; choose a longer held-out period")
    return m, t


class PlattCalibrator:
    """Platt scaling: ``p = 1 / (1 + exp(-(a * margin + b)))``."""

    def __init__(self, a: float = 1.0, b: float = 0.0) -> None:
        self.a = a
        self.b = b

    @classmethod
    def fit(cls, margin: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        # heavy: scikit-learn
        from sklearn.linear_model import LogisticRegression

        m, t = _check_fit_input(margin, y)
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(m.reshape(-1, 1), t)
        return cls(float(lr.coef_[0, 0]), float(lr.intercept_[0]))

    def predict(self, margin: np.ndarray) -> np.ndarray:
        z = self.a * np.asarray(margin, dtype=np.float64) + self.b
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "a": self.a, "b": self.b}


class IsotonicCalibrator:
    """Isotonic regression of the label on the margin, *centred*: each block of the
    pool-adjacent-violators fit becomes one knot at its margins' mean, and the PD is
    interpolated linearly between knots (flat beyond the first and last), clipped to
    ``[min_prob, 1 - min_prob]`` so no PD is exactly 0 or 1.

    Plain isotonic regression is a step function: every applicant of a block gets the same PD,
    which throws away the model's ranking inside it (on the SME test windows of
    docs/benchmarks.md it cost up to 0.004 AUC).  Centred, the PD rises strictly with the
    margin between the first and the last knot (Oron and Flournoy, "Centered isotonic
    regression", 2017), and the calibration is as good or better."""

    def __init__(self, knots_x: list[float], knots_y: list[float], min_prob: float = 1e-4) -> None:
        self.knots_x = np.asarray(knots_x, dtype=np.float64)
        self.knots_y = np.asarray(knots_y, dtype=np.float64)
        self.min_prob = min_prob

    @classmethod
    def fit(cls, margin: np.ndarray, y: np.ndarray, min_prob: float = 1e-4) -> IsotonicCalibrator:
        # heavy: scikit-learn
        from sklearn.isotonic import IsotonicRegression

        m, t = _check_fit_input(margin, y)
        iso = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(m, t)
        order = np.argsort(m, kind="stable")
        x, level = m[order], iso.predict(m[order])
        starts = np.flatnonzero(np.r_[True, np.diff(level) != 0])
        centres = np.add.reduceat(x, starts) / np.diff(np.r_[starts, x.size])
        return cls(centres.tolist(), level[starts].tolist(), min_prob)

    def predict(self, margin: np.ndarray) -> np.ndarray:
        p = np.interp(np.asarray(margin, dtype=np.float64), self.knots_x, self.knots_y)
        return np.clip(p, self.min_prob, 1.0 - self.min_prob)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "isotonic",
            "knots_x": self.knots_x.tolist(),
            "knots_y": self.knots_y.tolist(),
            "min_prob": self.min_prob,
        }


def _row_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per row ``-(y ln p + (1 - y) ln(1 - p))``, p clipped to ``[1e-12, 1 - 1e-12]``."""
    t = np.asarray(y, dtype=np.float64)
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.asarray(-(t * np.log(q) + (1 - t) * np.log(1 - q)))


def choose_calibration(
    margin: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
) -> CalibrationMethod:
    """The method chosen out of time on a time-ordered calibration window: each is fitted on
    its earlier half and scored by log loss on its later half.  Isotonic, the more flexible,
    is chosen only when its loss is lower than Platt's by more than one standard error of
    their paired difference (the one-standard-error rule): a choice that a few rows decide
    otherwise follows noise, and a zero-default block of an isotonic fit then puts near-zero
    PDs on the best grade (docs/benchmarks.md, issue 18, tenth session).  The standard error
    treats each of ``groups`` (the borrowers: a line's reviews share one default) as one
    draw, so ``sd(sum of its differences) * sqrt(G) / n`` over ``G`` groups; without groups,
    each row.  Platt when a half holds a single class (too few events to tell)."""
    m, t = _check_fit_input(margin, y)
    if groups is not None and len(groups) != m.size:
        raise YidaiError(f"{len(groups)} calibration groups for {m.size} scores")
    half = m.size // 2
    if t[:half].min() == t[:half].max() or t[half:].min() == t[half:].max():
        return "platt"
    later = {
        method: _row_log_loss(
            t[half:], fit_calibrator(method, m[:half], t[:half]).predict(m[half:])
        )
        for method in CALIBRATION_METHODS
    }
    diff = later["isotonic"] - later["platt"]
    if groups is None:
        se = float(diff.std(ddof=1) / np.sqrt(diff.size))
    else:
        _, group_of = np.unique(np.asarray(groups)[half:], return_inverse=True)
        per_group = np.bincount(group_of, weights=diff)
        se = float(per_group.std(ddof=1) * np.sqrt(per_group.size) / diff.size)
    return "isotonic" if float(diff.mean()) < -se else "platt"


def fit_calibrator(
    method: CalibrationMethod,
    margin: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
) -> Calibrator:
    """Fit the calibrator named by ``method`` on held-out margins and labels (``"auto"``:
    the one :func:`choose_calibration` picks, with ``groups`` the rows' borrowers, fitted on
    all of them)."""
    if method == "auto":
        method = choose_calibration(margin, y, groups)
    if method == "platt":
        return PlattCalibrator.fit(margin, y)
    if method == "isotonic":
        return IsotonicCalibrator.fit(margin, y)
    raise YidaiError(f"unknown calibration method {method!r}; use 'platt' or 'isotonic'")


def anchor_level(calibrator: Calibrator, margin: np.ndarray, rate: float) -> Calibrator:
    """``calibrator`` with its level moved so that its mean PD over ``margin`` is ``rate``:
    one shift ``d`` of the log-odds (Platt: ``b + d``; isotonic: every knot's log-odds + d),
    so the slope and the ranking are kept.

    Credit PDs are anchored on the long-run default rate of all labelled decisions (the
    central tendency), not on the short calibration window's own realised rate: two months
    of a line book hold about fifty defaulting borrowers, and that window's rate departed
    from the truth's by 0.67-1.09x on the benchmark worlds (docs/benchmarks.md, issue 18,
    sixth session), which the calibrator then copied into every PD.
    """
    if not 0.0 < rate < 1.0:
        raise YidaiError(f"the anchor rate must be strictly between 0 and 1, got {rate}")
    base = np.clip(calibrator.predict(np.asarray(margin, dtype=np.float64)), 1e-12, 1 - 1e-12)
    log_odds = np.log(base / (1.0 - base))
    low, high = -20.0, 20.0
    for _ in range(100):  # the mean PD rises strictly with d: bisection
        mid = (low + high) / 2.0
        if float(np.mean(1.0 / (1.0 + np.exp(-(log_odds + mid))))) < rate:
            low = mid
        else:
            high = mid
    shift = (low + high) / 2.0
    if isinstance(calibrator, PlattCalibrator):
        return PlattCalibrator(calibrator.a, calibrator.b + shift)
    if isinstance(calibrator, IsotonicCalibrator):
        knots = np.clip(calibrator.knots_y, 1e-12, 1 - 1e-12)
        moved = 1.0 / (1.0 + np.exp(-(np.log(knots / (1.0 - knots)) + shift)))
        return IsotonicCalibrator(calibrator.knots_x.tolist(), moved.tolist(), calibrator.min_prob)
    raise YidaiError(f"cannot anchor the level of {type(calibrator).__name__}")


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """Rebuild a calibrator saved with ``to_dict()``."""
    method = data.get("method")
    if method == "platt":
        return PlattCalibrator(float(data["a"]), float(data["b"]))
    if method == "isotonic":
        return IsotonicCalibrator(data["knots_x"], data["knots_y"], float(data["min_prob"]))
    raise YidaiError(f"unknown calibrator in model metadata: {method!r}")
