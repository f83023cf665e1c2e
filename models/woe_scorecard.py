"""A points scorecard a credit committee can read: WoE binning with monotonic constraints and
a logistic regression on the binned features (optbinning, the library credit modellers use).

``points = sum_v points_v(bin of x_v)``; optbinning scales the logistic score with
points-to-double-odds: ``score = offset + factor * ln(odds)``, ``factor = PDO / ln 2``, a PD at
``base_odds`` (good:bad) scoring ``base_score`` - the same scaling as :class:`Scorecard`.
The reason codes of an applicant are the characteristics where it lost the most points:
``lost_v = max_bins points_v - points_v(bin of x_v)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.scorecard import Scorecard
from yidai.core.errors import YidaiError

#: Information value below which a characteristic is left out (the usual "unpredictive"
#: cut-off of credit scoring: < 0.02 useless, 0.02-0.1 weak, 0.1-0.3 medium, > 0.3 strong).
MIN_INFORMATION_VALUE = 0.02
#: Information value bands, as a credit committee reads them.
IV_BANDS: tuple[tuple[float, str], ...] = (
    (0.02, "unpredictive"),
    (0.1, "weak"),
    (0.3, "medium"),
    (0.5, "strong"),
    (float("inf"), "suspicious (check for leakage)"),
)


def iv_strength(iv: float) -> str:
    """The band of an information value (see :data:`IV_BANDS`)."""
    return next(label for bound, label in IV_BANDS if iv < bound)


@dataclass(frozen=True)
class PointsLost:
    """One characteristic of an applicant: its bin and the points it lost there."""

    feature: str
    bin: str
    points_lost: float


class WoEScorecard:
    """``fit(X, y)`` bins every feature (monotone where ``monotone`` says so: +1 risk rises,
    -1 risk falls, else optbinning picks ascending or descending), keeps those with an
    information value >= ``min_iv``, fits a logistic regression on their WoE and scales it
    to points.  Fitted attributes end in ``_``: ``scorecard_`` (optbinning), ``features_``
    (selected), ``points_table_`` (points per bin), ``iv_report_`` (every feature)."""

    def __init__(
        self,
        *,
        monotone: Mapping[str, int] | None = None,
        min_iv: float = MIN_INFORMATION_VALUE,
        max_n_bins: int = 8,
        min_bin_size: float = 0.03,
        scaling: Scorecard | None = None,
        C: float = 1.0,
    ) -> None:
        self.monotone = dict(monotone or {})
        self.min_iv = min_iv
        self.max_n_bins = max_n_bins
        self.min_bin_size = min_bin_size
        self.scaling = scaling or Scorecard()
        self.C = C

    def _trend(self, feature: str) -> str:
        return {1: "ascending", -1: "descending"}.get(
            self.monotone.get(feature, 0), "auto_asc_desc"
        )

    def fit(self, X: pd.DataFrame, y: np.ndarray | pd.Series) -> WoEScorecard:
        """Bin, select, regress and scale on ``(X, y)`` (a DataFrame; y 0/1, both present)."""
        # heavy: optbinning and scikit-learn
        from optbinning import BinningProcess
        from optbinning import Scorecard as OptScorecard
        from sklearn.linear_model import LogisticRegression

        if not isinstance(X, pd.DataFrame):
            raise YidaiError("the scorecard needs a DataFrame so that characteristics are named")
        labels = np.asarray(y).ravel()
        if labels.size != len(X) or not np.isin(labels, (0, 1)).all():
            raise YidaiError("the scorecard needs one 0/1 label per row")
        if labels.min() == labels.max():
            raise YidaiError("the scorecard needs both goods and bads in its training rows")
        unknown = sorted(set(self.monotone) - set(X.columns))
        if unknown:
            raise YidaiError(f"monotone constraints name unknown features: {unknown}")
        names = [str(c) for c in X.columns]
        process = BinningProcess(
            names,
            max_n_bins=self.max_n_bins,
            min_bin_size=self.min_bin_size,
            binning_fit_params={f: {"monotonic_trend": self._trend(f)} for f in names},
            selection_criteria={"iv": {"min": self.min_iv}},
        )
        s = self.scaling
        card = OptScorecard(
            binning_process=process,
            estimator=LogisticRegression(C=self.C, max_iter=2000),
            scaling_method="pdo_odds",
            scaling_method_params={
                "pdo": s.pdo,
                "odds": s.base_odds,
                "scorecard_points": s.base_score,
            },
        )
        card.fit(X.astype("float64"), labels, metric_missing="empirical")
        self.feature_names_ = names
        self.scorecard_ = card
        self.features_ = [str(f) for f in card.binning_process_.get_support(names=True)]
        if not self.features_:
            raise YidaiError(
                f"no characteristic has an information value >= {self.min_iv}: nothing to score"
            )
        table = card.table(style="detailed")
        self.points_table_ = table[
            ["Variable", "Bin id", "Bin", "Count", "Event rate", "WoE", "IV", "Points"]
        ].copy()
        self.max_points_ = self.points_table_.groupby("Variable")["Points"].max().to_dict()
        summary = card.binning_process_.summary().set_index("name")
        self.iv_report_ = pd.DataFrame(
            {
                "feature": names,
                "iv": [float(summary.loc[f, "iv"]) for f in names],
                "gini": [float(summary.loc[f, "gini"]) for f in names],
                "n_bins": [int(summary.loc[f, "n_bins"]) for f in names],
                "monotonic_trend": [self._trend(f) for f in names],
                "selected": [f in self.features_ for f in names],
            }
        ).sort_values("iv", ascending=False, ignore_index=True)
        self.iv_report_["strength"] = self.iv_report_["iv"].map(iv_strength)
        return self

    # ------------------------------------------------------------------ predict
    def _frame(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            missing = [f for f in self.feature_names_ if f not in X.columns]
            if missing:
                raise YidaiError(f"the scorecard's input lacks characteristics {missing}")
            return X[self.feature_names_].astype("float64")
        matrix = np.asarray(X, dtype=np.float64).reshape(-1, len(self.feature_names_))
        return pd.DataFrame(matrix, columns=self.feature_names_)

    def score(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Points per row (higher = safer)."""
        return np.asarray(self.scorecard_.score(self._frame(X)), dtype=np.float64)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """``(n, 2)``: probability of good, probability of default."""
        return np.asarray(self.scorecard_.predict_proba(self._frame(X)), dtype=np.float64)

    def predict_pd(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Probability of default per row."""
        return self.predict_proba(X)[:, 1]

    def points(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Points per selected characteristic per row (they add up to :meth:`score`)."""
        frame = self._frame(X)
        bins = self.scorecard_.binning_process_.transform(
            frame, metric="indices", metric_missing="empirical"
        )
        out = {}
        for feature in self.features_:
            rows = self.points_table_[self.points_table_["Variable"] == feature]
            lookup = dict(zip(rows["Bin id"].astype(int), rows["Points"], strict=True))
            out[feature] = [lookup[int(i)] for i in np.asarray(bins[feature])]
        return pd.DataFrame(out, index=frame.index)

    def reason_codes(self, X: pd.DataFrame | np.ndarray, top_k: int = 4) -> list[list[PointsLost]]:
        """Per row, the ``top_k`` characteristics that lost the most points (none lost: none)."""
        frame = self._frame(X)
        points = self.points(frame)
        bins = self.scorecard_.binning_process_.transform(
            frame, metric="bins", metric_missing="empirical"
        )
        lost = pd.DataFrame({f: self.max_points_[f] - points[f] for f in self.features_})
        out: list[list[PointsLost]] = []
        for i in range(len(frame)):
            row = lost.iloc[i].sort_values(ascending=False, kind="mergesort")
            out.append(
                [
                    PointsLost(str(f), str(np.asarray(bins[f])[i]), round(float(v), 2))
                    for f, v in row.head(top_k).items()
                    if v > 1e-9
                ]
            )
        return out

    def iv_report_markdown(self) -> str:
        """The information-value report as a Markdown table, strongest first."""
        lines = [
            "| characteristic | IV | strength | Gini | bins | trend | in the scorecard |",
            "|---|---:|---|---:|---:|---|---|",
        ]
        for r in self.iv_report_.itertuples():
            lines.append(
                f"| {r.feature} | {r.iv:.4f} | {r.strength} | {r.gini:.3f} | {r.n_bins} "
                f"| {r.monotonic_trend} | {'yes' if r.selected else 'no'} |"
            )
        return "\n".join(lines) + "\n"


def describe(card: WoEScorecard, features: Sequence[str] | None = None) -> dict[str, Any]:
    """A summary of a fitted scorecard for logs and MLflow params."""
    chosen = list(features or card.features_)
    return {
        "n_characteristics": len(chosen),
        "characteristics": ",".join(chosen),
        "min_iv": card.min_iv,
        "max_n_bins": card.max_n_bins,
        "pdo": card.scaling.pdo,
        "base_score": card.scaling.base_score,
        "base_odds": card.scaling.base_odds,
    }
