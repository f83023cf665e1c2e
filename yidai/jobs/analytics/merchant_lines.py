"""Merchant revolving lines as published by the nightly refresh (``yidai.jobs.limits``)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

UTILISATION_BANDS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


def line_kpis(limits: pd.DataFrame) -> dict[str, float]:
    """Lines in force and totals; ``utilisation = outstanding / credit_line`` of active lines."""
    active = limits.loc[limits["status"] == "active"]
    committed = float(active["credit_line"].sum())
    drawn = float(active["outstanding"].sum())
    return {
        "merchants": float(len(limits)),
        "active_lines": float(len(active)),
        "frozen_lines": float((limits["status"] == "frozen").sum()),
        "committed": committed,
        "drawn": drawn,
        "utilisation": drawn / committed if committed else float("nan"),
    }


def utilisation_bands(
    limits: pd.DataFrame, edges: tuple[float, ...] = UTILISATION_BANDS
) -> pd.DataFrame:
    """Active lines per utilisation band ``[lo, hi)``; the last band is ``>= edges[-1]``."""
    active = limits.loc[(limits["status"] == "active") & (limits["credit_line"] > 0)]
    util = active["outstanding"] / active["credit_line"]
    bins = [*edges, np.inf]
    labels = [f"{lo:.0%}-{hi:.0%}" for lo, hi in itertools.pairwise(edges)]
    labels.append(f">={edges[-1]:.0%}")
    bands = pd.cut(util, bins=bins, labels=labels, right=False)
    counts = bands.value_counts().reindex(labels, fill_value=0)
    return pd.DataFrame({"band": labels, "lines": counts.to_numpy()})


def changes_by_reason(changes: pd.DataFrame) -> pd.DataFrame:
    """The last refresh's changes grouped by decision and reason: merchants and line change."""
    if changes.empty:
        return pd.DataFrame(
            columns=["decision", "reason_code", "reason_text", "merchants", "line_change"]
        )
    text = changes["reason_text"] if "reason_text" in changes else changes["reason_code"]
    out = (
        changes.assign(reason_text=text.fillna(changes["reason_code"]))
        .groupby(["decision", "reason_code", "reason_text"], as_index=False)
        .agg(merchants=("merchant_id", "size"), line_change=("change", "sum"))
        .sort_values(["merchants", "reason_code"], ascending=[False, True])
    )
    return out.reset_index(drop=True)
