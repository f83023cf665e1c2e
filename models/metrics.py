"""Model performance and stability metrics, each a small vectorised function.

Conventions: ``y_true`` is 0/1 (1 = default or fraud), ``y_score`` is any score where higher
means riskier (a PD, a fraud probability or a raw margin).  Every function states its formula.
Inputs are validated: empty arrays, NaN scores or a single class raise :class:`YidaiError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    import pandas as pd

ArrayLike: TypeAlias = "np.ndarray | pd.Series | Sequence[float]"

#: PSI at or above which a feature or score counts as drifted: the monitoring alert and the
#: promotion gate use this one threshold (0.1-0.25 some shift, > 0.25 major shift).
PSI_ALERT_THRESHOLD = 0.25

#: Floor of a bin's share in the PSI so that an empty bin does not give ``log(0)``.
PSI_EPSILON = 1e-4


def _labels_and_scores(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise YidaiError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    if y.size == 0:
        raise YidaiError("cannot compute a metric on an empty set")
    if np.isnan(s).any():
        raise YidaiError("scores contain NaN")
    if not np.isin(y, (0.0, 1.0)).all():
        raise YidaiError("labels must be 0 or 1")
    return y, s


def _require_both_classes(y: np.ndarray) -> tuple[int, int]:
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise YidaiError(f"metric needs both classes, got {n_pos} positives and {n_neg} negatives")
    return n_pos, n_neg


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start index of each run of equal values, and its length.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    lengths = np.diff(np.r_[starts, values.size])
    mean_rank_of_run = starts + (lengths + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank_of_run, lengths)
    return ranks


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties).

    ``AUC = (R+ - n+ (n+ + 1) / 2) / (n+ * n-)`` where ``R+`` is the sum of the ranks of the
    positives' scores among all scores.  Equals P(score of a random positive > score of a
    random negative) + 0.5 P(tie).
    """
    y, s = _labels_and_scores(y_true, y_score)
    n_pos, n_neg = _require_both_classes(y)
    rank_sum = float(_average_ranks(s)[y == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def gini(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Gini coefficient (accuracy ratio): ``Gini = 2 * AUC - 1``."""
    return 2.0 * auc(y_true, y_score) - 1.0


def roc_curve(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points ``(fpr, tpr, thresholds)`` for the rule "flag if score >= threshold".

    ``TPR(t) = #{pos: s >= t} / n+``, ``FPR(t) = #{neg: s >= t} / n-``, for every distinct
    score ``t`` in decreasing order, starting at (0, 0).
    """
    y, s = _labels_and_scores(y_true, y_score)
    n_pos, n_neg = _require_both_classes(y)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last_of_tie]
    fp = np.cumsum(1.0 - y_sorted)[last_of_tie]
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    thresholds = np.r_[np.inf, s_sorted[last_of_tie]]
    return fpr, tpr, thresholds


def ks(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic: ``KS = max_t |F_bad(t) - F_good(t)|``.

    ``F_bad`` and ``F_good`` are the empirical score distributions of positives and negatives;
    equivalently ``max_t |TPR(t) - FPR(t)|`` over all thresholds.
    """
    fpr, tpr, _ = roc_curve(y_true, y_score)
    return float(np.max(np.abs(tpr - fpr)))


def psi(expected: ArrayLike, actual: ArrayLike, bins: int = 10) -> float:
    """Population stability index of ``actual`` against the ``expected`` distribution.

    ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` where ``e_i`` and ``a_i`` are the shares of
    the expected and actual values in bin ``i``.  Bins are the ``bins`` quantiles of
    ``expected`` (repeated edges merged, so a binary feature gets two bins), plus one bin for
    missing values; shares are floored at ``PSI_EPSILON``.  Rule of thumb: < 0.1 stable,
    0.1-0.25 some shift, > 0.25 major shift.
    """
    e = np.asarray(expected, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    if e.size == 0 or a.size == 0:
        raise YidaiError("PSI needs non-empty expected and actual samples")
    if bins < 2:
        raise YidaiError(f"PSI needs at least 2 bins, got {bins}")
    e_present = e[~np.isnan(e)]
    if e_present.size:
        inner_edges = np.unique(np.quantile(e_present, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        inner_edges = np.empty(0)

    def shares(values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        idx = np.searchsorted(inner_edges, values[~missing], side="left")
        counts = np.bincount(idx, minlength=inner_edges.size + 1).astype(np.float64)
        counts = np.r_[counts, missing.sum()]
        return np.maximum(counts / values.size, PSI_EPSILON)

    e_share, a_share = shares(e), shares(a)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def psi_by_feature(
    expected: pd.DataFrame,
    actual: pd.DataFrame,
    bins: int = 10,
    rows: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """PSI (see :func:`psi`) of every column of ``expected`` against the same column of
    ``actual``; a column missing from ``actual`` raises.  ``rows``: per column, the boolean
    mask of ``expected``'s rows it is compared from (all rows for a column not in it)."""
    missing = [c for c in expected.columns if c not in actual.columns]
    if missing:
        raise YidaiError(f"PSI: columns missing from the actual sample: {missing}")
    chosen = rows or {}
    out = {}
    for c in expected.columns:
        reference = expected[c].to_numpy(np.float64)
        if c in chosen:
            reference = reference[chosen[c]]
        out[str(c)] = psi(reference, actual[c].to_numpy(np.float64), bins)
    return out


def brier(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Brier score: ``mean((p - y)^2)`` (lower is better; 0.25 for a constant 0.5)."""
    y, p = _labels_and_scores(y_true, y_prob)
    return float(np.mean((p - y) ** 2))


def _score_buckets(s: np.ndarray, bins: int) -> np.ndarray:
    """Bucket 0 holds the lowest scores; equal-count buckets by rank (ties split by order)."""
    order = np.argsort(s, kind="mergesort")
    buckets = np.empty(s.size, dtype=np.int64)
    buckets[order] = (np.arange(s.size) * bins) // s.size
    return buckets


def calibration_table(y_true: ArrayLike, y_prob: ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Observed vs expected rate per predicted-probability decile.

    Rows are sorted into ``bins`` equal-count buckets by predicted probability (bucket 1 =
    lowest).  Per bucket: ``n``, ``expected_rate = mean(p)``, ``observed_rate = mean(y)``,
    ``expected = sum(p)``, ``observed = sum(y)``, and ``lift = observed_rate / mean(y)``.
    """
    y, p = _labels_and_scores(y_true, y_prob)
    bins = max(1, min(bins, y.size))
    # heavy: pandas, for the tables (reports); the scalar metrics need none
    import pandas as pd

    frame = pd.DataFrame({"bucket": _score_buckets(p, bins) + 1, "y": y, "p": p})
    grouped = frame.groupby("bucket", sort=True)
    table = pd.DataFrame(
        {
            "n": grouped.size(),
            "expected_rate": grouped["p"].mean(),
            "observed_rate": grouped["y"].mean(),
            "expected": grouped["p"].sum(),
            "observed": grouped["y"].sum(),
        }
    )
    overall = float(y.mean())
    table["lift"] = table["observed_rate"] / overall if overall > 0 else np.nan
    return table.reset_index()


def hosmer_lemeshow(y_true: ArrayLike, y_prob: ArrayLike, bins: int = 10) -> tuple[float, float]:
    """Hosmer-Lemeshow goodness of fit over ``G`` groups of equal size by predicted PD:
    ``H = sum_g (O_g - E_g)^2 / (E_g * (1 - E_g / n_g))`` with ``O_g`` the defaults,
    ``E_g = sum p`` and ``n_g`` the rows of group ``g``; ``p-value = P(chi2_{G-2} >= H)``.
    A p-value below 0.05 rejects calibration.  Returns ``(H, p_value)``."""
    # heavy: scipy
    from scipy.stats import chi2

    y, p = _labels_and_scores(y_true, y_prob)
    if bins < 3:
        raise YidaiError(f"the Hosmer-Lemeshow test needs at least 3 groups, got {bins}")
    groups = np.array_split(np.argsort(p, kind="mergesort"), min(bins, y.size))
    observed = np.array([y[g].sum() for g in groups])
    expected = np.array([p[g].sum() for g in groups])
    sizes = np.array([g.size for g in groups], dtype=np.float64)
    variance = expected * (1 - expected / sizes)
    h = float(np.sum((observed - expected) ** 2 / np.maximum(variance, 1e-12)))
    return h, float(chi2.sf(h, len(groups) - 2))


def observed_to_expected(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """``O/E = sum y / sum p``: 1 when the PDs are right on average, below 1 when they
    over-predict."""
    y, p = _labels_and_scores(y_true, y_prob)
    if p.sum() <= 0:
        raise YidaiError("observed/expected needs predicted probabilities above 0")
    return float(y.sum() / p.sum())


def lift(y_true: ArrayLike, y_score: ArrayLike, top: float = 0.1) -> float:
    """Lift in the riskiest ``top`` share: ``mean(y | score in top share) / mean(y)``.

    The top share holds the ``ceil(top * n)`` highest scores (ties broken by position).
    """
    y, s = _labels_and_scores(y_true, y_score)
    _require_both_classes(y)
    if not 0 < top <= 1:
        raise YidaiError(f"lift: top share must be in (0, 1], got {top}")
    n_top = int(np.ceil(top * y.size))
    riskiest = np.argsort(-s, kind="mergesort")[:n_top]
    return float(y[riskiest].mean() / y.mean())


def average_precision(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision: ``AP = sum_n (R_n - R_{n-1}) * P_n``.

    ``P_n`` and ``R_n`` are precision and recall when flagging every score >= the ``n``-th
    distinct threshold (highest first); same definition as scikit-learn.  A random score gives
    about the positive share.
    """
    y, s = _labels_and_scores(y_true, y_score)
    n_pos, _ = _require_both_classes(y)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last_of_tie]
    flagged = (np.arange(1, y.size + 1))[last_of_tie]
    precision = tp / flagged
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _cards_per_day(day: ArrayLike, card: ArrayLike, y: np.ndarray, s: np.ndarray) -> pd.DataFrame:
    """One row per (day, card): fraudulent if any of its transactions that day is, scored by
    its highest transaction score; sorted by day, then score (highest first)."""
    days, cards = np.asarray(day).ravel(), np.asarray(card).ravel()
    if not days.size == cards.size == y.size:
        raise YidaiError(
            f"card precision: day ({days.size}), card ({cards.size}) and labels/scores"
            f" ({y.size}) differ in length"
        )
    # heavy: pandas, for the grouping by day and card
    import pandas as pd

    frame = pd.DataFrame({"day": days, "card": cards, "y": y, "s": s})
    per_card = frame.groupby(["day", "card"], sort=False).agg(y=("y", "max"), s=("s", "max"))
    per_card = per_card.reset_index()
    return per_card.sort_values(["day", "s"], ascending=[True, False], kind="mergesort")


def card_precision_top_k(
    day: ArrayLike,
    card: ArrayLike,
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int = 100,
) -> float:
    """Card precision top-k, the standard definition (Le Borgne et al., *Reproducible Machine
    Learning for Credit Card Fraud Detection*, the Fraud Detection Handbook, ch. 4.2).

    Days are taken in order.  On day ``d`` the cards already detected on an earlier day are
    removed; each remaining card gets its highest transaction score and is fraudulent if any
    of its transactions that day is; investigators check the ``k`` highest-scored cards.
    ``CP@k(d) = #fraudulent cards among those k / k`` (always divided by ``k``, also when
    fewer than ``k`` cards were seen), and the fraudulent ones join the detected cards.
    ``CP@k = mean_d CP@k(d)``.
    """
    y, s = _labels_and_scores(y_true, y_score)
    if k < 1:
        raise YidaiError(f"card precision top-k needs k >= 1, got {k}")
    detected: set[Any] = set()
    per_day: list[float] = []
    for _, cards in _cards_per_day(day, card, y, s).groupby("day", sort=True):
        top = cards[~cards["card"].isin(detected)].head(k)
        caught = top.loc[top["y"] > 0, "card"]
        per_day.append(len(caught) / k)
        detected.update(caught)
    return float(np.mean(per_day))


def card_fraud_share_top_k(
    day: ArrayLike,
    card: ArrayLike,
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int = 100,
) -> float:
    """Share of fraudulent cards among each day's top-k cards, averaged over days (Yidai's
    earlier "card precision@k"; not the standard :func:`card_precision_top_k`).

    Per day ``d``: each card gets its maximum score and is fraudulent if any of its
    transactions that day is; ``k_d = min(k, #cards on d)`` and
    ``share = mean_d(#fraudulent cards among the top k_d / k_d)``.  Cards detected on earlier
    days are kept, so a card caught on day 1 counts again on day 2.
    """
    y, s = _labels_and_scores(y_true, y_score)
    if k < 1:
        raise YidaiError(f"card fraud share top-k needs k >= 1, got {k}")
    per_card = _cards_per_day(day, card, y, s)
    per_card["rank"] = per_card.groupby("day").cumcount()
    top = per_card[per_card["rank"] < k]
    return float(top.groupby("day")["y"].mean().mean())


def amount_weighted_recall(
    y_true: ArrayLike, y_score: ArrayLike, amount: ArrayLike, alert_rate: float = 0.01
) -> float:
    """Share of the fraud amount caught when the riskiest ``alert_rate`` share is flagged.

    ``AWR = sum(amount_i * y_i * flagged_i) / sum(amount_i * y_i)`` where the flagged rows are
    the ``ceil(alert_rate * n)`` highest scores.
    """
    y, s = _labels_and_scores(y_true, y_score)
    amounts = np.asarray(amount, dtype=np.float64).ravel()
    if amounts.shape != y.shape:
        raise YidaiError("amount-weighted recall: amounts and labels differ in length")
    if not 0 < alert_rate <= 1:
        raise YidaiError(f"alert rate must be in (0, 1], got {alert_rate}")
    fraud_amount = float(np.sum(amounts * y))
    if fraud_amount <= 0:
        raise YidaiError("amount-weighted recall needs at least one fraud with an amount")
    flagged = np.zeros(y.size, dtype=bool)
    flagged[np.argsort(-s, kind="mergesort")[: int(np.ceil(alert_rate * y.size))]] = True
    return float(np.sum(amounts * y * flagged) / fraud_amount)
