"""Line-change policy for small merchants' revolving credit lines (pure and vectorised).

The nightly refresh first re-underwrites every merchant with the very same pure function the
online service uses for ``POST /v1/decisions/merchant-credit``
(:func:`yidai.decisioning.credit.decide_credit_batch` under the ``merchant`` policy): that
gives the line today's underwriting supports (the *target*) and its decision.  This module
then turns target and current line into a bounded change, with :func:`propose_line_changes`.

Rules, in order of precedence, for a merchant **with a line**:

1. days past due >= ``freeze_dpd`` (30, as banks do)        -> freeze ``FREEZE_DELINQUENT``
2. no feature row (no turnover data) for the merchant        -> freeze ``FREEZE_NO_TURNOVER``
3. turnover collapse: no turnover, recent turnover < ``collapse_ratio`` x the monthly
   average, or a season-adjusted decline >= ``collapse_seasonal_decline`` (so the Spring
   Festival dip alone freezes nobody)                       -> freeze ``FREEZE_TURNOVER_COLLAPSE``
4. outstanding above the current line (a line review lowered the line under the balance):
   the line is held, neither raised nor cut further      -> keep ``KEEP_OVER_LIMIT``
   (available is 0 until the balance is repaid below the line; not a freeze)
5. otherwise the line moves towards the target (approve: the formula's limit; refer: no
   increase; decline: 0) by at most ``+max_increase`` / ``-max_decrease`` of the current line
   per cycle, rounded to ``rounding`` CNY, never below the outstanding balance; a move smaller
   than ``tolerance`` keeps the line.  No increase while ``hold_dpd`` <= days past due <
   ``freeze_dpd`` (``KEEP_PAST_DUE``; decreases still apply), nor for a line leaving a freeze.

A line whose balance was **charged off** is closed for good (``CLOSED_CHARGED_OFF``:
decision ``close`` the night it goes, status ``none``; no new line follows: one line per
merchant for life).

A merchant **without a line** gets a new line (``NEW_LINE``, at most ``initial_line_cap``) if
underwriting approves it and no ``NONE_*`` rule applies.  A freeze keeps the line figure but
blocks new drawdowns (available = 0); the committed exposure of a frozen line is its
outstanding balance.  Missing inputs never produce NaN: every output is finite and every row
has a reason code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings

POLICY_FILE = "merchant_limits.yaml"
Inputs = Mapping[str, Any] | pd.DataFrame

DECISIONS = ("new", "increase", "keep", "decrease", "freeze", "none", "close")
STATUSES = ("active", "frozen", "none")

#: Reason code -> (English, Chinese) text shown to merchants and analysts.
REASONS: dict[str, tuple[str, str]] = {
    "NEW_LINE": ("New line granted on POS turnover", "根据POS流水新开额度"),
    "INCREASE_TURNOVER_GROWTH": (
        "Line raised: turnover supports a higher line",
        "流水增长,上调额度",
    ),
    "KEEP_WITHIN_TOLERANCE": ("Line kept: change below tolerance", "变动幅度小,额度不变"),
    "KEEP_OVER_LIMIT": (
        "Line held: balance above the line, no new drawdowns until repaid below it",
        "余额高于额度,维持额度,还款至额度内前不可再用款",
    ),
    "KEEP_PAST_DUE": ("Line held: a repayment is past due, no increase", "存在逾期,不上调额度"),
    "KEEP_REFER_BAND": (
        "Line kept: risk in the review band, no increase",
        "风险处于复核区间,不上调",
    ),
    "DECREASE_TURNOVER_DECLINE": ("Line lowered: turnover declined", "流水下降,下调额度"),
    "DECREASE_REFER_BAND": ("Line lowered: risk in the review band", "风险处于复核区间,下调额度"),
    "DECREASE_UNDERWRITING_DECLINE": (
        "Line lowered: no longer meets the underwriting policy",
        "不再满足授信政策,下调额度",
    ),
    "FREEZE_LIFTED": ("Freeze lifted; line not raised this cycle", "解除冻结,本期不上调额度"),
    "FREEZE_DELINQUENT": ("Line frozen: repayment past due", "逾期,冻结额度"),
    "FREEZE_NO_TURNOVER": ("Line frozen: no recent POS turnover data", "无近期POS流水,冻结额度"),
    "FREEZE_TURNOVER_COLLAPSE": ("Line frozen: POS turnover collapsed", "POS流水骤降,冻结额度"),
    "NONE_NO_TURNOVER_HISTORY": ("No line: no POS turnover history yet", "暂无POS流水记录"),
    "NONE_DELINQUENT": ("No line: repayment past due", "存在逾期"),
    "NONE_TURNOVER_COLLAPSE": ("No line: POS turnover collapsed", "POS流水骤降"),
    "NONE_NOT_APPROVED": ("No line: underwriting policy not met", "未满足授信政策"),
    "CLOSED_CHARGED_OFF": ("Line closed: balance charged off", "已核销,额度关闭"),
}

_REASON_INDEX = {code: i for i, code in enumerate(REASONS)}

#: Columns :func:`propose_line_changes` reads (a missing column counts as unknown).
INPUT_COLUMNS = (
    "current_line",
    "outstanding",
    "dpd",
    "was_frozen",
    "has_features",
    "monthly_turnover",
    "recent_turnover",
    "seasonal_decline",
    "underwriting_decision",
    "underwriting_limit",
    "underwriting_codes",
    "charged_off",
)
# The product's minimum line is a rule for opening a line: an existing line whose only
# underwriting objection is that minimum follows the formula's (smaller) limit instead of 0.
OPENING_ONLY_CODES = frozenset({"LM_BELOW_MINIMUM"})


class TurnoverColumns(BaseModel):
    """Which feature-set columns give the turnover figures of the collapse rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    monthly_turnover: str = Field(description="Net POS turnover over a longer window (CNY).")
    monthly_turnover_scale: float = Field(1.0, gt=0, description="x this = a monthly figure.")
    recent_turnover: str = Field(description="Net POS turnover of the most recent window.")
    recent_turnover_scale: float = Field(1.0, gt=0, description="x this = a monthly figure.")
    seasonal_decline: str | None = Field(
        None, description="Decline not explained by the season (1 - own / market trend)."
    )


class MerchantLimitPolicy(BaseModel):
    """Parameters of the line-change policy (``yidai/policies/merchant_limits.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    underwriting_product: str = Field(
        "merchant", description="Credit policy (policy file) that gives the target line."
    )
    turnover: TurnoverColumns
    max_increase: float = Field(0.30, ge=0, description="At most +30% of the line per cycle.")
    max_decrease: float = Field(0.50, ge=0, le=1, description="At most -50% per cycle.")
    tolerance: float = Field(0.05, ge=0, description="Relative moves below this keep the line.")
    rounding: float = Field(1_000, gt=0, description="Lines move in steps of this (CNY).")
    initial_line_cap: float = Field(200_000, gt=0, description="Cap of a first line.")
    new_line_request_months: float = Field(
        1.0,
        gt=0,
        description="A merchant without a line is scored as if requesting this many months "
        "of turnover (the request-time feature); one with a line, for its current line.",
    )
    hold_dpd: int = Field(
        1, ge=1, description="No increase (and no new line) from this many days past due."
    )
    freeze_dpd: int = Field(30, ge=1, description="Freeze at this many days past due.")
    collapse_ratio: float = Field(
        0.2, ge=0, le=1, description="Recent / average monthly turnover below this = collapse."
    )
    collapse_seasonal_decline: float = Field(
        0.65, gt=0, description="Season-adjusted decline at or above this = collapse."
    )

    @model_validator(mode="after")
    def _hold_before_freeze(self) -> MerchantLimitPolicy:
        if self.hold_dpd > self.freeze_dpd:
            raise ValueError(f"hold_dpd {self.hold_dpd} exceeds freeze_dpd {self.freeze_dpd}")
        return self

    def digest(self) -> str:
        """A stable hash of every parameter (part of a limits version id)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_merchant_limit_policy(path: Path | None = None) -> MerchantLimitPolicy:
    """Load and validate the policy file (default: ``<settings.policies>/merchant_limits.yaml``).

    The parameters sit under a ``merchant_limits:`` key (or at the top level).
    """
    if path is None:
        path = get_settings().policies / POLICY_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YidaiError(f"cannot read merchant limit policy {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise YidaiError(f"merchant limit policy {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise YidaiError(f"merchant limit policy {path}: expected a mapping at the top level")
    try:
        return MerchantLimitPolicy.model_validate(raw.get("merchant_limits", raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise YidaiError(f"invalid merchant limit policy {path}: {problems}") from exc


def _floats(inputs: Inputs, name: str, n: int, fill: float) -> np.ndarray:
    """Column ``name`` as float64 with NaN replaced by ``fill`` (all ``fill`` if absent)."""
    if name not in inputs:
        return np.full(n, fill, dtype=np.float64)
    values = pd.to_numeric(pd.Series(np.asarray(inputs[name])), errors="coerce")
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(arr), arr, fill)


def _bools(inputs: Inputs, name: str, n: int, fill: bool) -> np.ndarray:
    if name not in inputs:
        return np.full(n, fill, dtype=bool)
    return pd.Series(np.asarray(inputs[name], dtype=object)).fillna(fill).astype(bool).to_numpy()


def _length(inputs: Inputs) -> int:
    if isinstance(inputs, pd.DataFrame):
        return len(inputs)
    lengths = {len(np.asarray(inputs[c])) for c in INPUT_COLUMNS if c in inputs}
    if len(lengths) > 1:
        raise YidaiError(f"line-change inputs have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


@dataclass(frozen=True)
class MerchantArrays:
    """The line-change inputs as aligned arrays, NaN replaced where a rule needs a figure."""

    current: np.ndarray
    outstanding: np.ndarray
    dpd: np.ndarray
    was_frozen: np.ndarray
    has_features: np.ndarray
    monthly: np.ndarray
    recent: np.ndarray
    seasonal: np.ndarray
    uw_limit: np.ndarray
    approve: np.ndarray
    refer: np.ndarray
    charged_off: np.ndarray

    @property
    def has_line(self) -> np.ndarray:
        return self.current > 0


def merchant_arrays(inputs: Inputs) -> MerchantArrays:
    """The inputs as arrays; a line whose only underwriting codes are opening-only is approved."""
    n = _length(inputs)
    current = np.maximum(_floats(inputs, "current_line", n, 0.0), 0.0)
    if "underwriting_decision" in inputs:
        uw = pd.Series(inputs["underwriting_decision"])
        approve = uw.eq("approve").fillna(False).to_numpy(dtype=bool)
        refer = uw.eq("refer").fillna(False).to_numpy(dtype=bool)
    else:
        approve = refer = np.zeros(n, dtype=bool)
    if "underwriting_codes" in inputs:
        approve = approve | ((current > 0) & _opening_only(inputs["underwriting_codes"]))
    return MerchantArrays(
        current=current,
        outstanding=np.maximum(_floats(inputs, "outstanding", n, 0.0), 0.0),
        dpd=_floats(inputs, "dpd", n, 0.0),
        was_frozen=_bools(inputs, "was_frozen", n, False),
        has_features=_bools(inputs, "has_features", n, False),
        monthly=_floats(inputs, "monthly_turnover", n, np.nan),
        recent=_floats(inputs, "recent_turnover", n, np.nan),
        seasonal=_floats(inputs, "seasonal_decline", n, np.nan),
        uw_limit=np.maximum(_floats(inputs, "underwriting_limit", n, 0.0), 0.0),
        approve=approve,
        refer=refer,
        charged_off=_bools(inputs, "charged_off", n, False),
    )


def _opening_only(codes: Any) -> np.ndarray:
    """Underwriting reason codes (``;``-joined) that only bar opening a line, not keeping one."""
    texts = pd.Series(np.asarray(codes, dtype=object)).fillna("")
    return texts.map(lambda c: bool(c) and set(str(c).split(";")) <= OPENING_ONLY_CODES).to_numpy(
        dtype=bool
    )


def turnover_collapse(m: MerchantArrays, policy: MerchantLimitPolicy) -> np.ndarray:
    """No turnover, recent turnover under ``collapse_ratio`` x monthly, or a seasonal decline."""
    return m.has_features & (
        (np.isfinite(m.monthly) & (m.monthly <= 0))
        | (np.isfinite(m.recent) & (m.recent < policy.collapse_ratio * np.nan_to_num(m.monthly)))
        | (np.isfinite(m.seasonal) & (m.seasonal >= policy.collapse_seasonal_decline))
    )


def target_line(m: MerchantArrays) -> np.ndarray:
    """The line underwriting supports: approve its limit, refer no increase, else 0."""
    target = np.where(
        m.approve, m.uw_limit, np.where(m.refer, np.minimum(m.uw_limit, m.current), 0.0)
    )
    return np.where(m.has_features, target, 0.0)


@dataclass(frozen=True)
class _Move:
    proposed: np.ndarray  # the new figure of an existing line (before freeze rules)
    capped: np.ndarray  # the per-cycle bound was hit
    floored: np.ndarray  # raised to the outstanding balance


def capped_move(
    m: MerchantArrays, target: np.ndarray, past_due: np.ndarray, policy: MerchantLimitPolicy
) -> _Move:
    """Existing lines: a bounded, rounded move towards the target, never below outstanding;
    no increase while past due or leaving a freeze; a line under its balance is held."""
    current, outstanding, step = m.current, m.outstanding, policy.rounding
    over_line = m.has_line & (outstanding > current)
    lower = current * (1.0 - policy.max_decrease)
    cycle_upper = current * (1.0 + policy.max_increase)
    upper = np.where(m.was_frozen | past_due, current, cycle_upper)
    bounded = np.clip(target, lower, upper)
    capped = m.has_line & ((target < lower) | (target > cycle_upper))
    rounded = np.where(
        bounded >= current,
        np.maximum(np.floor(bounded / step) * step, current),
        np.minimum(np.ceil(bounded / step) * step, current),
    )
    rounded = np.clip(rounded, lower, upper)
    floored = (rounded < outstanding) & ~over_line
    proposed = np.where(over_line, current, np.maximum(rounded, outstanding))
    safe_current = np.where(m.has_line, current, 1.0)
    small_move = (np.abs(proposed - current) / safe_current < policy.tolerance) & (
        current >= outstanding
    )
    return _Move(np.where(small_move, current, proposed), capped, floored)


def _freeze_reason(m: MerchantArrays, delinquent: np.ndarray, collapse: np.ndarray) -> np.ndarray:
    """The freeze rule that applies first (index into :data:`REASONS`), -1 if none."""
    code = _REASON_INDEX.__getitem__
    return np.select(
        [delinquent, ~m.has_features, collapse],
        [code("FREEZE_DELINQUENT"), code("FREEZE_NO_TURNOVER"), code("FREEZE_TURNOVER_COLLAPSE")],
        default=-1,
    )


def _move_reason(
    m: MerchantArrays, proposed: np.ndarray, target: np.ndarray, past_due: np.ndarray
) -> np.ndarray:
    """Why an existing (unfrozen) line moved or stayed (index into :data:`REASONS`)."""
    code = _REASON_INDEX.__getitem__
    current, approve, refer = m.current, m.approve, m.refer
    down = proposed < current
    rules = [
        (m.was_frozen, "FREEZE_LIFTED"),
        (proposed > current, "INCREASE_TURNOVER_GROWTH"),
        (down & approve, "DECREASE_TURNOVER_DECLINE"),
        (down & refer, "DECREASE_REFER_BAND"),
        (down, "DECREASE_UNDERWRITING_DECLINE"),
        (m.has_line & (m.outstanding > current), "KEEP_OVER_LIMIT"),
        (past_due & (target > current), "KEEP_PAST_DUE"),
        (refer & (target < current), "KEEP_REFER_BAND"),
    ]
    return np.select(
        [when for when, _ in rules],
        [code(reason) for _, reason in rules],
        default=code("KEEP_WITHIN_TOLERANCE"),
    )


def first_line(
    m: MerchantArrays,
    target: np.ndarray,
    past_due: np.ndarray,
    collapse: np.ndarray,
    policy: MerchantLimitPolicy,
) -> tuple[np.ndarray, np.ndarray]:
    """Merchants without a line: the capped first line and its reason (``NEW_LINE`` grants)."""
    code = _REASON_INDEX.__getitem__
    step = policy.rounding
    line = np.floor(np.minimum(target, policy.initial_line_cap) / step) * step
    reason = np.select(
        [~m.has_features, past_due, collapse, ~m.approve | (line < step)],
        [
            code("NONE_NO_TURNOVER_HISTORY"),
            code("NONE_DELINQUENT"),
            code("NONE_TURNOVER_COLLAPSE"),
            code("NONE_NOT_APPROVED"),
        ],
        default=code("NEW_LINE"),
    )
    return np.maximum(line, m.outstanding), reason


def propose_line_changes(inputs: Inputs, policy: MerchantLimitPolicy) -> pd.DataFrame:
    """Apply the line-change rules to every merchant at once.

    ``inputs`` holds the :data:`INPUT_COLUMNS` (arrays or DataFrame columns; NaN = unknown;
    ``underwriting_decision`` is ``approve`` / ``refer`` / ``decline``, anything else counts
    as decline).  Returns a frame aligned with the inputs: ``target_line``, ``new_line``,
    ``decision``, ``status``, ``reason_code``, ``change_capped`` (the per-cycle bound was
    hit) and ``floored_at_outstanding``.
    """
    m = merchant_arrays(inputs)
    has_line, current = m.has_line, m.current
    past_due = m.dpd >= policy.hold_dpd
    collapse = turnover_collapse(m, policy)
    target = target_line(m)
    move = capped_move(m, target, past_due, policy)
    freeze_reason = _freeze_reason(m, m.dpd >= policy.freeze_dpd, collapse)
    freeze = has_line & (freeze_reason >= 0)
    opening, none_reason = first_line(m, target, past_due, collapse, policy)
    grant = ~has_line & (none_reason == _REASON_INDEX["NEW_LINE"])
    closed = m.charged_off
    freeze, grant = freeze & ~closed, grant & ~closed
    new_line = np.select(
        [closed, freeze, has_line, grant], [0.0, current, move.proposed, opening], default=0.0
    )
    decision = np.select(
        [
            closed & has_line,
            closed,
            freeze,
            has_line & (new_line > current),
            has_line & (new_line < current),
            has_line,
            grant,
        ],
        [
            DECISIONS.index(d)
            for d in ("close", "none", "freeze", "increase", "decrease", "keep", "new")
        ],
        default=DECISIONS.index("none"),
    )
    status = np.select(
        [closed, freeze, has_line | grant],
        [STATUSES.index("none"), STATUSES.index("frozen"), STATUSES.index("active")],
        default=STATUSES.index("none"),
    )
    moved_reason = _move_reason(m, move.proposed, target, past_due)
    reason = np.select(
        [closed, freeze, has_line],
        [_REASON_INDEX["CLOSED_CHARGED_OFF"], freeze_reason, moved_reason],
        default=none_reason,
    )
    return pd.DataFrame(
        {
            "target_line": target.astype(np.float64),
            "new_line": new_line.astype(np.float64),
            "decision": pd.Categorical.from_codes(decision, categories=pd.Index(DECISIONS)),
            "status": pd.Categorical.from_codes(status, categories=pd.Index(STATUSES)),
            "reason_code": pd.Categorical.from_codes(reason, categories=pd.Index(list(REASONS))),
            "change_capped": move.capped & ~freeze & ~closed,
            "floored_at_outstanding": move.floored & has_line & ~freeze & ~closed,
        },
        index=inputs.index if isinstance(inputs, pd.DataFrame) else None,
    )


def reason_text(code: str, language: str = "en") -> str:
    """Human-readable text of a line-change reason code (``en`` or ``zh``)."""
    english, chinese = REASONS[code]
    return chinese if language == "zh" else english
