"""The policy simulator: a candidate credit policy against the live one on history.

Both policies are applied with the decisioning package's own vectorised function
(:func:`yidai.decisioning.decide_credit_batch`) to the same scored historical applications,
so the simulator can never disagree with what the service would decide.  On simulated data
the simulator's truth (``true_defaulted``) gives the outcome of every applicant, including
those the live policy declines, with no reject-inference guesswork.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from models.metrics import auc
from yidai.core.errors import YidaiError
from yidai.decisioning import CreditPolicy, decide_credit_batch
from yidai.decisioning.policy import CashFlowLimit, SpendMultipleLimit, TurnoverShareLimit

_LIMIT_PARAMETER = {
    SpendMultipleLimit: "multiple",
    TurnoverShareLimit: "share",
    CashFlowLimit: "net_flow_months",
}


def limit_parameter(policy: CreditPolicy) -> tuple[str, float]:
    """Name and value of the limit formula's size parameter (multiple, share, months)."""
    name = _LIMIT_PARAMETER[type(policy.limit)]
    return name, float(getattr(policy.limit, name))


def candidate_policy(
    live: CreditPolicy,
    *,
    approve_min_score: float | None = None,
    refer_min_score: float | None = None,
    max_pd: float | None = None,
    limit_factor: float = 1.0,
) -> CreditPolicy:
    """The live policy with other cut-offs and its limit size parameter scaled by ``limit_factor``.

    Validated like a policy file; the mistakes an analyst makes at the keyboard are refused
    with a plain sentence (:func:`check_cutoffs`), anything else with the policy's own
    validation message (no URLs or field paths).
    """
    problem = check_cutoffs(
        live.cutoffs.approve_min_score if approve_min_score is None else approve_min_score,
        live.cutoffs.refer_min_score if refer_min_score is None else refer_min_score,
        max_pd,
        limit_factor,
    )
    if problem:
        raise YidaiError(problem)
    data: dict[str, Any] = live.model_dump()
    cut = data["cutoffs"]
    if approve_min_score is not None:
        cut["approve_min_score"] = approve_min_score
    if refer_min_score is not None:
        cut["refer_min_score"] = refer_min_score
    if max_pd is not None:
        cut["max_pd"] = max_pd
    name, value = limit_parameter(live)
    data["limit"][name] = value * limit_factor
    data["version"] = f"{live.version}-candidate"
    try:
        return CreditPolicy.model_validate(data)
    except ValidationError as exc:
        messages = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise YidaiError(f"This candidate policy is not valid: {messages}.") from exc


def check_cutoffs(
    approve_min_score: float, refer_min_score: float, max_pd: float | None, limit_factor: float
) -> str | None:
    """A plain-language sentence saying what is wrong with candidate cut-offs, or None."""
    if refer_min_score > approve_min_score:
        return (
            f"The refer cut-off ({refer_min_score:g}) is above the approve cut-off "
            f"({approve_min_score:g}). Applicants are approved from the approve cut-off and "
            "referred between the two, so the refer cut-off must be at or below the approve "
            "cut-off: lower the refer cut-off or raise the approve cut-off."
        )
    if max_pd is not None and not 0 < max_pd <= 1:
        return f"The maximum PD must be a probability above 0% and at most 100%, not {max_pd:g}."
    if limit_factor <= 0:
        return f"The limit multiplier must be above 0, not {limit_factor:g}."
    return None


def apply_policy(scored: pd.DataFrame, policy: CreditPolicy) -> pd.DataFrame:
    """Decide every scored application under ``policy`` (vectorised, the service's rules)."""
    return decide_credit_batch(
        policy,
        scored,
        scored["pd"].to_numpy(np.float64),
        scored["score"].to_numpy(np.float64),
        scored["grade"].astype(str).to_numpy(),
        requested_amount=scored["requested_amount"].to_numpy(np.float64),
        applicant_ids=scored["entity_id"].astype(str).to_numpy(),
    )


def policy_outcome(scored: pd.DataFrame, decisions: pd.DataFrame, lgd: float) -> dict[str, float]:
    """Approval rate, volume, expected loss and bad rates of one policy's decisions.

    ``volume`` = sum of approved lines; ``expected_loss = sum(line * PD * LGD)`` (a fully
    drawn line); ``observed_bad_rate`` = defaults among approved *matured* loans the bank
    booked (``label``); ``true_bad_rate`` = simulator truth among every approved applicant.
    """
    approved = (decisions["decision"] == "approve").to_numpy()
    lines = decisions["limit"].to_numpy(np.float64)
    n = len(decisions)
    out = {
        "applications": float(n),
        "approved": float(approved.sum()),
        "approval_rate": float(approved.mean()) if n else float("nan"),
        "refer_rate": float((decisions["decision"] == "refer").mean()) if n else float("nan"),
        "volume": float(lines[approved].sum()),
        "expected_loss": float((lines * scored["pd"].to_numpy(np.float64) * lgd)[approved].sum()),
        "observed_bad_rate": float("nan"),
        "true_bad_rate": float("nan"),
    }
    labels = scored["label"]
    known = approved & labels.notna().to_numpy()
    if known.any():
        out["observed_bad_rate"] = float(labels[known].astype(float).mean())
    if "true_defaulted" in scored:
        truth = scored["true_defaulted"].to_numpy(np.float64)
        if approved.any():
            out["true_bad_rate"] = float(np.nanmean(truth[approved]))
    return out


def compare_policies(
    scored: pd.DataFrame, live: CreditPolicy, candidate: CreditPolicy
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Live vs candidate: a metrics table (rows = metric), and both decision frames."""
    live_dec, cand_dec = apply_policy(scored, live), apply_policy(scored, candidate)
    table = pd.DataFrame(
        {
            "live": policy_outcome(scored, live_dec, live.limit.lgd),
            "candidate": policy_outcome(scored, cand_dec, candidate.limit.lgd),
        }
    )
    table["change"] = table["candidate"] - table["live"]
    return table.rename_axis("metric").reset_index(), live_dec, cand_dec


def declined_truth(
    scored: pd.DataFrame, live_dec: pd.DataFrame, cand_dec: pd.DataFrame
) -> pd.DataFrame:
    """True outcome (simulator) of the applicants in each live / candidate decision cell.

    Rows: ``approved by both``, ``swap-in`` (candidate approves what live declines),
    ``swap-out`` (the reverse), ``declined by both``; with applicants, true defaults and
    the true bad rate.  Needs the ``true_defaulted`` column (simulated data only).
    """
    if "true_defaulted" not in scored:
        raise YidaiError("no simulator truth joined to these applications")
    live_ok = (live_dec["decision"] == "approve").to_numpy()
    cand_ok = (cand_dec["decision"] == "approve").to_numpy()
    truth = scored["true_defaulted"].to_numpy(np.float64)
    cells = {
        "approved by both": live_ok & cand_ok,
        "swap-in (candidate approves, live declines)": ~live_ok & cand_ok,
        "swap-out (live approves, candidate declines)": live_ok & ~cand_ok,
        "declined by both": ~live_ok & ~cand_ok,
    }
    rows = []
    for name, mask in cells.items():
        count = int(mask.sum())
        rows.append(
            {
                "cell": name,
                "applicants": count,
                "true_defaults": float(np.nansum(truth[mask])),
                "true_bad_rate": float(np.nanmean(truth[mask])) if count else float("nan"),
            }
        )
    return pd.DataFrame(rows)


#: The models whose PDs a scored-applications table may carry: column prefix -> label.
COMPARED_MODELS = {"": "champion", "challenger_": "challenger", "scorecard_": "scorecard"}


def compare_models(scored: pd.DataFrame, approval_rate: float) -> pd.DataFrame:
    """Champion, challenger and scorecard on the same applicants, with true outcomes.

    Each model approves the ``approval_rate`` share of applicants with its lowest PDs.  Per
    model: its version, AUC of its PD against the simulator's true default of every
    applicant (``true_auc``) and against the matured labels of booked loans (``label_auc``),
    and among the applicants it approves the true bad rate and the mean predicted PD
    (``expected_bad_rate``; equal to the true bad rate when the model is calibrated).
    """
    if not 0 < approval_rate <= 1:
        raise YidaiError(f"approval rate must be in (0, 1], got {approval_rate}")
    rows = []
    for prefix, label in COMPARED_MODELS.items():
        column = f"{prefix}pd"
        if column not in scored:
            continue
        pd_ = scored[column].to_numpy(np.float64)
        approved = np.zeros(len(scored), dtype=bool)
        n_approved = round(approval_rate * len(scored))
        approved[np.argsort(pd_, kind="mergesort")[:n_approved]] = True
        row: dict[str, Any] = {
            "model": label,
            "version": str(scored[f"{prefix}version" if prefix else "model_version"].iloc[0]),
            "expected_bad_rate": float(pd_[approved].mean()) if approved.any() else float("nan"),
            "true_bad_rate": float("nan"),
            "true_auc": float("nan"),
            "label_auc": float("nan"),
        }
        if "true_defaulted" in scored:
            truth = scored["true_defaulted"].to_numpy(np.float64)
            known = ~np.isnan(truth)
            row["true_bad_rate"] = (
                float(np.nanmean(truth[approved])) if approved.any() else row["true_bad_rate"]
            )
            if 0 < truth[known].sum() < known.sum():
                row["true_auc"] = auc(truth[known], pd_[known])
        labels = scored["label"].to_numpy(np.float64) if "label" in scored else np.array([])
        matured = ~np.isnan(labels) if labels.size else np.zeros(len(scored), dtype=bool)
        if matured.any() and 0 < labels[matured].sum() < matured.sum():
            row["label_auc"] = auc(labels[matured], pd_[matured])
        rows.append(row)
    return pd.DataFrame(rows)
