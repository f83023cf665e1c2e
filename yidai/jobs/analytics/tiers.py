"""Amount tiers: the one tier function (and its SQL twin for the publish step) and the tables.

A tier table is ``(label, inclusive upper bound)`` pairs in ascending order, the last one
open-ended: an amount falls in the first tier with ``amount <= upper``, as in the payment
decisions (``yidai.decisioning.decide_payment``).  The payment-risk policy
(``yidai.decisioning.PaymentPolicy.tiers``) owns the payment tiers: :func:`payment_tiers`
reads them from the live policy, with :data:`DEFAULT_TIERS` (the same bounds as the shipped
policy, tested) as the fallback when no payment policy is installed.  :data:`CREDIT_TIERS`
groups the credit decisions by requested amount.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from yidai.core.errors import YidaiError
from yidai.decisioning import load_payment_policy

TierTable = Sequence[tuple[str, float]]

#: Payment tiers (CNY) when no payment policy is installed.
DEFAULT_TIERS: tuple[tuple[str, float], ...] = (
    ("small <=200", 200.0),
    ("medium <=2k", 2_000.0),
    ("large <=20k", 20_000.0),
    ("very large >20k", math.inf),
)
#: Requested-amount tiers (CNY) of the credit decision rates.
CREDIT_TIERS: tuple[tuple[str, float], ...] = (
    ("<=5k", 5_000.0),
    ("<=20k", 20_000.0),
    ("<=100k", 100_000.0),
    (">100k", math.inf),
)


def payment_tiers() -> tuple[tuple[str, float], ...]:
    """The live payment policy's tiers as ``(name, max_amount)``; defaults if there is none."""
    try:
        policy = load_payment_policy()
    except (YidaiError, FileNotFoundError):
        return DEFAULT_TIERS
    return tuple(
        (t.name, math.inf if t.max_amount is None else float(t.max_amount)) for t in policy.tiers
    )


def tier_labels(tiers: TierTable = DEFAULT_TIERS) -> list[str]:
    """Tier labels in ascending amount order."""
    return [label for label, _ in tiers]


def amount_tier(
    amounts: pd.Series, tiers: TierTable = DEFAULT_TIERS, *, missing: str | None = None
) -> pd.Series:
    """The tier label of each amount, an ordered categorical.

    An amount that is not a number has no tier (NaN), or the label ``missing`` when given
    (then the last category).
    """
    values = pd.to_numeric(amounts, errors="coerce").to_numpy(dtype=float)
    bounds = np.array([upper for _, upper in tiers], dtype=float)
    idx = np.minimum(np.searchsorted(bounds, values, side="left"), len(tiers) - 1)
    labels = tier_labels(tiers)
    tier = np.asarray(labels, dtype=object)[idx]
    tier[np.isnan(values)] = missing
    categories = [*labels, missing] if missing is not None else labels
    dtype = pd.CategoricalDtype(categories=categories, ordered=True)
    return pd.Series(tier, index=amounts.index, dtype=dtype)


def amount_tier_sql(column: str, tiers: TierTable = DEFAULT_TIERS) -> str:
    """A DuckDB ``CASE`` expression giving the same labels as :func:`amount_tier` (NULL for a
    NULL amount)."""
    whens = [
        f"WHEN {column} <= {upper!r} THEN '{label}'"
        for label, upper in tiers[:-1]
        if math.isfinite(upper)
    ]
    return f"CASE WHEN {column} IS NULL THEN NULL {' '.join(whens)} ELSE '{tiers[-1][0]}' END"
