"""Payment amount tiers for the fraud views (and their SQL twin for the publish step).

The payment-risk policy (``yidai.decisioning.PaymentPolicy.tiers``) owns the tiers: a payment
falls in the first tier with ``amount <= max_amount``.  The dashboards only group by them;
:func:`payment_tiers` reads them from the live policy, with :data:`DEFAULT_TIERS` as the
fallback when no payment policy is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

# (label, inclusive upper bound); the last one is open-ended.
DEFAULT_TIERS: tuple[tuple[str, float], ...] = (
    ("small <=200", 200.0),
    ("medium <=2k", 2_000.0),
    ("large <=20k", 20_000.0),
    ("very large >20k", math.inf),
)


def payment_tiers() -> tuple[tuple[str, float], ...]:
    """The live payment policy's tiers as ``(name, max_amount)``; defaults if there is none."""
    from yidai.core.errors import YidaiError
    from yidai.decisioning import load_payment_policy

    try:
        policy = load_payment_policy()
    except (YidaiError, FileNotFoundError):
        return DEFAULT_TIERS
    return tuple(
        (t.name, math.inf if t.max_amount is None else float(t.max_amount)) for t in policy.tiers
    )


def tier_labels(tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS) -> list[str]:
    """Tier labels in ascending amount order."""
    return [label for label, _ in tiers]


def amount_tier(
    amounts: pd.Series, tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS
) -> pd.Series:
    """The tier label of each amount (an ordered categorical)."""
    bounds = np.array([upper for _, upper in tiers], dtype=float)
    idx = np.searchsorted(bounds, amounts.to_numpy(dtype=float), side="left")
    idx = np.minimum(idx, len(tiers) - 1)
    labels = tier_labels(tiers)
    dtype = pd.CategoricalDtype(categories=labels, ordered=True)
    return pd.Series(np.asarray(labels, dtype=object)[idx], index=amounts.index, dtype=dtype)


def amount_tier_sql(column: str, tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS) -> str:
    """A DuckDB ``CASE`` expression giving the same labels as :func:`amount_tier`."""
    whens = [
        f"WHEN {column} <= {upper!r} THEN '{label}'"
        for label, upper in tiers[:-1]
        if math.isfinite(upper)
    ]
    return f"CASE {' '.join(whens)} ELSE '{tiers[-1][0]}' END"
