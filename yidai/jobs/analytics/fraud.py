"""Fraud analytics on the published tables: outcomes by amount tier, caught vs missed as the
labels arrive, risky terminals and merchants, merchant cash-out suspects, and the Yidai fraud
model at the live payment policy's thresholds against the historical block rules (per tier
and as a catch vs friction trade-off curve) on the scored payment events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from yidai.core.errors import YidaiError
from yidai.decisioning import PaymentPolicy, decide_payment_batch
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


def tier_totals(by_tier: pd.DataFrame) -> dict[str, float]:
    """All tiers of :func:`fraud_by_tier` together: ``frauds``, ``caught_rate = caught /
    frauds``, ``missed_amount`` and ``fraud_rate = frauds / txns`` (NaN without frauds or
    transactions)."""
    frauds = float(by_tier["frauds"].sum())
    txns = float(by_tier["txns"].sum())
    return {
        "frauds": frauds,
        "caught_rate": float(by_tier["caught"].sum()) / frauds if frauds else float("nan"),
        "missed_amount": float(by_tier["missed_amount"].sum()),
        "fraud_rate": frauds / txns if txns else float("nan"),
    }


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


# ------------------------------------------------------------ the fraud model at the live policy
def _weights(events: pd.DataFrame) -> pd.Series:
    return events["weight"] if "weight" in events else pd.Series(1.0, index=events.index)


def policy_actions(events: pd.DataFrame, policy: PaymentPolicy, scale: float = 1.0) -> pd.Series:
    """The live payment policy's action per scored event (``allow``, ``step_up``, ``decline``).

    Replays the model part of :func:`yidai.decisioning.decide_payment_batch` (the tier's
    ``step_up_at`` / ``decline_at`` thresholds, each multiplied by ``scale``, and the
    blocklist) on ``amount`` and ``fraud_prob``; the new-device step-up is not replayed (the
    device history is not in the events).
    """
    if scale <= 0:
        raise YidaiError(f"threshold scale must be > 0, got {scale}")
    scaled = policy.model_copy(
        update={
            "tiers": tuple(
                t.model_copy(
                    update={"step_up_at": t.step_up_at * scale, "decline_at": t.decline_at * scale}
                )
                for t in policy.tiers
            )
        }
    )
    decided = decide_payment_batch(
        scaled, events["amount"].to_numpy(), events["fraud_prob"].to_numpy(),
        payer_ids=events["payer_id"].to_numpy() if "payer_id" in events else None,
    )  # fmt: skip
    return pd.Series(decided["action"].to_numpy(), index=events.index, name="action")


def model_vs_rules_by_tier(
    events: pd.DataFrame, policy: PaymentPolicy, tiers: Sequence[tuple[str, float]]
) -> pd.DataFrame:
    """Per amount tier: the fraud model at the live policy's thresholds against the bank's
    historical block rules, on scored events (``amount, fraud_prob, label, weight,
    rules_blocked``; weighted sums estimate the population, see ``weight``).

    With F the frauds (``label == 1``), L the legitimate events and *stopped* = declined or
    stepped up by the policy:

    - ``catch_rate`` = w(F stopped) / w(F), ``catch_rate_amount`` = the same on amounts;
    - ``decline_rate`` = w(declined) / w(all), ``step_up_rate`` = w(stepped up) / w(all);
    - ``false_positive_rate`` = w(L declined) / w(L) (good customers turned away);
    - ``friction`` = w(L stopped) / w(L) (good customers declined or asked to step up);
    - ``fraud_amount_stopped`` = amount of F stopped (the money the policy would save);
    - ``rules_catch_rate``, ``rules_catch_rate_amount``, ``rules_false_positive_rate``: the
      same for the historical rules' blocks (``rules_blocked``).
    """
    action = policy_actions(events, policy)
    w = _weights(events)
    fraud = events["label"].astype(int) == 1
    amount = events["amount"].astype(float)
    stopped = action != "allow"
    rules = events["rules_blocked"].astype(bool)
    frame = pd.DataFrame(
        {
            "tier": amount_tier(amount, tiers),
            "w": w,
            "fraud_w": w * fraud,
            "legit_w": w * ~fraud,
            "fraud_amount": amount * fraud,
            "caught_w": w * (fraud & stopped),
            "caught_amount": amount * (fraud & stopped),
            "declined_w": w * (action == "decline"),
            "step_up_w": w * (action == "step_up"),
            "fp_w": w * (~fraud & (action == "decline")),
            "friction_w": w * (~fraud & stopped),
            "rules_caught_w": w * (fraud & rules),
            "rules_caught_amount": amount * (fraud & rules),
            "rules_fp_w": w * (~fraud & rules),
        }
    )
    g = frame.groupby("tier", observed=False).sum(numeric_only=True)
    g = g.reindex(tier_labels(tiers)).fillna(0.0)

    def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
        return num / den.where(den > 0)

    out = pd.DataFrame(
        {
            "tier": g.index,
            "events": g["w"].to_numpy(),
            "frauds": g["fraud_w"].to_numpy(),
            "fraud_amount": g["fraud_amount"].to_numpy(),
            "catch_rate": ratio(g["caught_w"], g["fraud_w"]).to_numpy(),
            "catch_rate_amount": ratio(g["caught_amount"], g["fraud_amount"]).to_numpy(),
            "fraud_amount_stopped": g["caught_amount"].to_numpy(),
            "decline_rate": ratio(g["declined_w"], g["w"]).to_numpy(),
            "step_up_rate": ratio(g["step_up_w"], g["w"]).to_numpy(),
            "false_positive_rate": ratio(g["fp_w"], g["legit_w"]).to_numpy(),
            "friction": ratio(g["friction_w"], g["legit_w"]).to_numpy(),
            "rules_catch_rate": ratio(g["rules_caught_w"], g["fraud_w"]).to_numpy(),
            "rules_catch_rate_amount": ratio(
                g["rules_caught_amount"], g["fraud_amount"]
            ).to_numpy(),
            "rules_fraud_amount_stopped": g["rules_caught_amount"].to_numpy(),
            "rules_false_positive_rate": ratio(g["rules_fp_w"], g["legit_w"]).to_numpy(),
        }
    )
    return out.reset_index(drop=True)


def model_totals(
    events: pd.DataFrame, policy: PaymentPolicy, scale: float = 1.0
) -> dict[str, float]:
    """All tiers together, at the live thresholds times ``scale``: ``catch_rate``,
    ``catch_rate_amount``, ``false_positive_rate``, ``friction``, ``step_up_rate`` (same
    formulas as :func:`model_vs_rules_by_tier`) and the rules' ``rules_catch_rate`` /
    ``rules_catch_rate_amount`` / ``rules_false_positive_rate``."""
    action = policy_actions(events, policy, scale)
    w = _weights(events)
    fraud = events["label"].astype(int) == 1
    amount = events["amount"].astype(float)
    stopped = action != "allow"
    rules = events["rules_blocked"].astype(bool)

    def share(num: float, den: float) -> float:
        return float(num / den) if den > 0 else float("nan")

    legit_w = float(w[~fraud].sum())
    fraud_w = float(w[fraud].sum())
    fraud_amount = float(amount[fraud].sum())
    return {
        "catch_rate": share(w[fraud & stopped].sum(), fraud_w),
        "catch_rate_amount": share(amount[fraud & stopped].sum(), fraud_amount),
        "false_positive_rate": share(w[~fraud & (action == "decline")].sum(), legit_w),
        "friction": share(w[~fraud & stopped].sum(), legit_w),
        "step_up_rate": share(w[action == "step_up"].sum(), float(w.sum())),
        "fraud_amount_stopped": float(amount[fraud & stopped].sum()),
        "rules_catch_rate": share(w[fraud & rules].sum(), fraud_w),
        "rules_catch_rate_amount": share(amount[fraud & rules].sum(), fraud_amount),
        "rules_false_positive_rate": share(w[~fraud & rules].sum(), legit_w),
    }


#: Threshold multipliers of the trade-off curve (1 = the live policy).
TRADEOFF_SCALES: tuple[float, ...] = tuple(float(x) for x in np.geomspace(0.05, 20.0, 41))


def tradeoff_curve(
    events: pd.DataFrame, policy: PaymentPolicy, scales: Sequence[float] = TRADEOFF_SCALES
) -> pd.DataFrame:
    """Catch vs customer friction as every tier's thresholds move together.

    One row per ``scale`` (each tier's ``step_up_at`` and ``decline_at`` multiplied by it;
    lower = stricter): ``catch_rate``, ``catch_rate_amount``, ``friction`` (share of
    legitimate events declined or stepped up) and ``false_positive_rate``, as in
    :func:`model_totals`; ``live`` marks scale 1, the live operating point.
    """
    grid = sorted({*map(float, scales), 1.0})
    rows = [{"scale": s, **model_totals(events, policy, s)} for s in grid]
    out = pd.DataFrame(rows)
    out["live"] = np.isclose(out["scale"], 1.0)
    return out[["scale", "catch_rate", "catch_rate_amount", "friction", "false_positive_rate",
                "live"]]  # fmt: skip
