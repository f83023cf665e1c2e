"""Fraud analytics on the published tables: outcomes by amount tier, caught vs missed as the
labels arrive, risky terminals and merchants, and merchant cash-out suspects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from yidai.jobs.analytics.tiers import DEFAULT_TIERS, amount_tier, tier_labels

PAYMENT_ACTIONS = ("allow", "step_up", "decline")


def known_frauds(fraud_events: pd.DataFrame, as_of: date | pd.Timestamp) -> pd.DataFrame:
    """The fraud reports the bank knew at the end of ``as_of`` (``reported_at <= as_of``)."""
    cutoff = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    return fraud_events.loc[pd.to_datetime(fraud_events["reported_at"]) < cutoff]


def fraud_by_tier(
    txn_tiers: pd.DataFrame, fraud_events: pd.DataFrame, labels: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per amount tier: volume, blocked rate, known fraud rate and the share of fraud caught.

    ``blocked_rate = blocked / txns`` (declined by the bank), ``fraud_rate = frauds / txns``,
    ``caught_rate = caught frauds / frauds`` and ``missed_amount`` the reported loss of frauds
    that went through.  ``labels`` orders the tiers (default: as found).
    """
    volume = txn_tiers.groupby("tier", observed=True)[["txns", "amount", "blocked"]].sum()
    frauds = fraud_events.assign(
        missed_loss=fraud_events["loss_amount"].where(~fraud_events["caught"], 0.0)
    )
    fraud = frauds.groupby("tier", observed=True).agg(
        frauds=("ref_id", "size"), caught=("caught", "sum"), missed_amount=("missed_loss", "sum")
    )
    out = volume.join(fraud, how="outer")
    out = out.reindex(list(labels) if labels else out.index).fillna(0.0)
    out["blocked_rate"] = out["blocked"] / out["txns"].where(out["txns"] > 0)
    out["fraud_rate"] = out["frauds"] / out["txns"].where(out["txns"] > 0)
    out["caught_rate"] = out["caught"] / out["frauds"].where(out["frauds"] > 0)
    return out.rename_axis("tier").reset_index()


def decision_outcomes_by_tier(
    decisions: pd.DataFrame, tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS
) -> pd.DataFrame:
    """Payment-risk decisions (``amount``, ``action``) -> allow / step-up / decline per tier."""
    if decisions.empty:
        return pd.DataFrame(columns=["tier", "decisions", *[f"{a}_rate" for a in PAYMENT_ACTIONS]])
    tier = amount_tier(decisions["amount"], tiers)
    counts = pd.crosstab(tier, decisions["action"]).reindex(
        index=tier_labels(tiers), columns=list(PAYMENT_ACTIONS), fill_value=0
    )
    total = counts.sum(axis=1)
    out = pd.DataFrame({"tier": counts.index, "decisions": total.to_numpy()})
    for action in PAYMENT_ACTIONS:
        out[f"{action}_rate"] = (counts[action] / total.where(total > 0)).to_numpy()
    return out


def caught_vs_missed(
    fraud_events: pd.DataFrame, as_of: date | pd.Timestamp, freq: str = "W-MON"
) -> pd.DataFrame:
    """Known frauds per transaction week: caught / missed counts and amounts as of ``as_of``.

    Recent weeks look cleaner than they are because their reports have not arrived yet;
    ``label_delay_days`` (median days from transaction to report) shows how late labels come.
    """
    known = known_frauds(fraud_events, as_of)
    if known.empty:
        return pd.DataFrame(
            columns=[
                "week",
                "caught",
                "missed",
                "caught_amount",
                "missed_amount",
                "label_delay_days",
            ]
        )
    ts = pd.to_datetime(known["ts"])
    frame = pd.DataFrame(
        {
            "week": ts.dt.to_period(freq).dt.start_time,
            "caught": known["caught"].astype(bool).to_numpy(),
            "amount": known["txn_amount"].to_numpy(),
            "delay": (pd.to_datetime(known["reported_at"]) - ts).dt.total_seconds() / 86400,
        }
    )
    frame["caught_amount"] = frame["amount"].where(frame["caught"], 0.0)
    frame["missed_amount"] = frame["amount"].where(~frame["caught"], 0.0)
    out = frame.groupby("week", as_index=False).agg(
        caught=("caught", "sum"),
        missed=("caught", lambda s: int((~s).sum())),
        caught_amount=("caught_amount", "sum"),
        missed_amount=("missed_amount", "sum"),
        label_delay_days=("delay", "median"),
    )
    return out


def label_arrival(fraud_events: pd.DataFrame, max_days: int = 60) -> pd.DataFrame:
    """Share of all reported frauds known within ``d`` days of the transaction, d = 0..max_days."""
    delay = (
        pd.to_datetime(fraud_events["reported_at"]) - pd.to_datetime(fraud_events["ts"])
    ).dt.total_seconds() / 86400
    days = np.arange(max_days + 1)
    share = [(delay <= d).mean() if len(delay) else np.nan for d in days]
    return pd.DataFrame({"days_after_txn": days, "share_reported": share})


def top_risky_terminals(
    terminal_risk: pd.DataFrame, k: int = 20, min_txns: int = 20
) -> pd.DataFrame:
    """Terminals ranked by skimming footprint, then fraud rate.

    ``compromise_rate = cards_later_defrauded / cards`` (genuine cards that later suffered
    fraud), ``fraud_rate = frauds / txns``.  Terminals with fewer than ``min_txns`` are left out.
    """
    frame = terminal_risk.loc[terminal_risk["txns"] >= min_txns].copy()
    frame["compromise_rate"] = frame["cards_later_defrauded"] / frame["cards"].where(
        frame["cards"] > 0
    )
    frame["fraud_rate"] = frame["frauds"] / frame["txns"]
    frame = frame.sort_values(
        ["compromise_rate", "fraud_rate", "fraud_amount", "terminal_id"],
        ascending=[False, False, False, True],
    )
    return frame.head(k).reset_index(drop=True)


def top_risky_merchants(
    terminal_risk: pd.DataFrame, k: int = 20, min_txns: int = 50
) -> pd.DataFrame:
    """Merchants (all their terminals) ranked by reported fraud amount, then fraud rate."""
    frame = terminal_risk.groupby("merchant_id", as_index=False)[
        ["txns", "amount", "frauds", "fraud_amount", "cards", "cards_later_defrauded"]
    ].sum()
    frame = frame.loc[frame["txns"] >= min_txns].copy()
    frame["fraud_rate"] = frame["frauds"] / frame["txns"]
    frame = frame.sort_values(
        ["fraud_amount", "fraud_rate", "merchant_id"], ascending=[False, False, True]
    )
    return frame.head(k).reset_index(drop=True)


def cash_out_suspects(
    merchant_cashout: pd.DataFrame, k: int = 20, min_txns: int = 20
) -> pd.DataFrame:
    """Merchants most likely swiping their own cards for cash, best suspects first.

    ``suspicion`` is the mean percentile rank (0..1) of ``round_share``, ``top3_card_share``
    and ``swipes_per_card`` among merchants with at least ``min_txns`` approved transactions;
    ``confirmed`` tells whether a ``merchant_cash_out`` report already exists.
    """
    frame = merchant_cashout.loc[merchant_cashout["txns"] >= min_txns].copy()
    if frame.empty:
        return frame.assign(suspicion=pd.Series(dtype=float), confirmed=pd.Series(dtype=bool))
    signals = frame[["round_share", "top3_card_share", "swipes_per_card"]].rank(pct=True)
    frame["suspicion"] = signals.mean(axis=1)
    frame["confirmed"] = frame["cash_out_reports"] > 0
    frame = frame.sort_values(["suspicion", "merchant_id"], ascending=[False, True])
    return frame.head(k).reset_index(drop=True)
