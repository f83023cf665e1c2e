"""Merchant revolving lines as published by the nightly refresh (``yidai.jobs.limits``)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from yidai.decisioning import exposure as defs

UTILISATION_BANDS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


def line_kpis(limits: pd.DataFrame) -> dict[str, float]:
    """The Merchant limits page's tiles, from :mod:`yidai.decisioning.exposure`: lines
    active and frozen, committed (active lines), drawn (active and frozen), available,
    exposure (= drawn + available, what the exposure-by-grade bars add up to), utilisation
    (drawn on active lines / committed) and the frozen share of open lines."""
    line = limits["credit_line"].to_numpy(np.float64)
    owed = limits["outstanding"].to_numpy(np.float64)
    status = limits["status"].astype(str).to_numpy()
    drawn = float(defs.drawn(owed, status).sum())
    avail = float(defs.available(line, owed, status).sum())
    return {
        "merchants": float(len(limits)),
        "active_lines": float((status == "active").sum()),
        "frozen_lines": float((status == "frozen").sum()),
        "committed": float(defs.committed(line, status).sum()),
        "drawn": drawn,
        "available": avail,
        "exposure": float(defs.exposure(line, owed, status).sum()),
        "utilisation": defs.utilisation(owed, line, status),
        "frozen_share": defs.frozen_share(status),
    }


def exposure_by_grade(limits: pd.DataFrame) -> pd.DataFrame:
    """Exposure (drawn + available) per grade of the lines shown: the bars of the page, which
    add up to the Exposure tile."""
    line = limits["credit_line"].to_numpy(np.float64)
    owed = limits["outstanding"].to_numpy(np.float64)
    status = limits["status"].astype(str).to_numpy()
    frame = pd.DataFrame(
        {
            "grade": limits["grade"].astype(str).to_numpy(),
            "drawn": defs.drawn(owed, status),
            "available": defs.available(line, owed, status),
        }
    )
    return frame.groupby("grade", as_index=False, sort=True)[["drawn", "available"]].sum()


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
