"""Adverse-action reason codes from LightGBM's own contributions (``pred_contrib``).

Each feature belongs to one reason group (by its declared group, else by keywords in its
``<entity>_<measure>_<window>`` name).  Per prediction, contributions to the margin are summed
per group; the groups that raise the risk most (positive sum) are the reasons, best first,
with English and Chinese text for the decline letter and the app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from yidai.core.errors import YidaiError


@dataclass(frozen=True)
class ReasonGroup:
    """A reason code with the name keywords that select its features and its texts."""

    code: str
    name: str
    keywords: tuple[str, ...]
    text_en: str
    text_zh: str


def _group(code: str, name: str, keywords: tuple[str, ...], en: str, zh: str) -> ReasonGroup:
    return ReasonGroup(code, name, keywords, en, zh)


#: When a feature declares no known group, the first group whose keyword appears in its name
#: wins.  Group names follow the feature store's ``reason_group`` declarations.
REASON_GROUPS: tuple[ReasonGroup, ...] = (
    _group("R01", "delinquency", ("delinq", "dpd", "overdue", "past_due", "late_repay"),
           "Past or current delinquency on credit", "存在历史或当前逾期记录"),
    _group("R02", "credit_usage", ("util", "outstanding", "credit_usage", "drawn", "limit"),
           "High use of existing credit", "现有授信使用率较高"),
    _group("R03", "bill_payments", ("bill", "ontime", "on_time"),
           "Bill payments missed, failed or made late", "账单缴费不按时或失败"),
    _group("R04", "refunds", ("refund", "cancel"),
           "High share of refunds or cancelled orders", "退款或取消订单比例偏高"),
    _group("R05", "chargebacks", ("chargeback",),
           "Chargebacks on card transactions", "银行卡交易存在拒付"),
    _group("R06", "cash_out", ("cash_out", "round_amount", "own_card"),
           "Signs of card cash-out at the merchant", "商户存在套现迹象"),
    _group("R07", "declines", ("decline",),
           "Many declined card transactions", "银行卡交易被拒次数较多"),
    _group("R08", "requested_amount", ("requested",),
           "Requested amount high relative to income or turnover",
           "申请金额相对收入或经营流水偏高"),
    _group("R09", "new_device", ("new_device", "new_channel"),
           "Payment from a new device or channel", "使用新设备或新渠道交易"),
    _group("R10", "new_counterpart", ("new_counterpart", "new_terminal", "new_payee"),
           "Payment to a new payee or at a new terminal", "向新收款方或在新终端交易"),
    _group("R11", "counterpart_risk", ("counterpart_fraud",),
           "Terminal or payee with recent fraud reports", "终端或收款方近期存在欺诈报告"),
    _group("R12", "merchant_risk", ("merchant_fraud",),
           "Merchant with recent fraud reports", "商户近期存在欺诈报告"),
    _group("R13", "amount", ("amount_to", "amount_tier", "amount_log", "zscore"),
           "Amount unusual for this customer", "交易金额与客户历史习惯不符"),
    _group("R14", "velocity", ("_1h", "_24h", "velocity"),
           "Unusual number or amount of recent transactions", "短时间内交易次数或金额异常"),
    _group("R15", "time", ("hour", "night"),
           "Transactions at unusual hours", "交易时段异常"),
    _group("R16", "channel", ("channel", "card_not_present", "transfer", "entry_mode"),
           "Higher-risk payment channel or card entry", "支付渠道或读卡方式风险较高"),
    _group("R17", "risky_spending", ("risky", "gambl", "quasi_cash"),
           "Spending in high-risk categories", "高风险类别消费占比偏高"),
    _group("R18", "spending_trend", ("spend_trend", "spend_growth", "spending_trend"),
           "Declining spending", "消费金额呈下降趋势"),
    _group("R19", "turnover_trend", ("turnover_trend", "decline_adj", "seasonal"),
           "Declining POS turnover", "POS经营流水呈下降趋势"),
    _group("R20", "cash_flow_trend", ("inflow_trend", "cash_flow_trend"),
           "Declining cash inflows", "资金流入呈下降趋势"),
    _group("R21", "spending_stability", ("spend_cv", "spend_volatil"),
           "Irregular spending", "消费不稳定"),
    _group("R22", "turnover_stability", ("turnover_cv", "turnover_volatil", "monthly_cv"),
           "Volatile POS turnover", "POS经营流水波动较大"),
    _group("R23", "cash_flow_stability", ("inflow_cv", "cash_flow_cv"),
           "Volatile cash flows", "资金流水波动较大"),
    _group("R24", "concentration", ("concentr", "top_share", "hhi", "distinct_cards"),
           "Business concentrated on few customers or counterparts",
           "客户或交易对手集中度较高"),
    _group("R25", "b2b_trade", ("b2b",),
           "Weak or irregular B2B trade on the mall", "电商B2B交易较弱或异常"),
    _group("R26", "mall_behaviour", ("mall", "order"),
           "Weak online mall purchase history", "电商平台购物记录较弱"),
    _group("R27", "turnover", ("turnover", "ticket"),
           "Low POS turnover", "POS经营流水规模偏低"),
    _group("R28", "cash_flow", ("inflow", "outflow", "net_flow"),
           "Low cash inflows", "资金流入规模偏低"),
    _group("R29", "spending_level", ("spend", "income"),
           "Low level of spending", "消费规模偏低"),
    _group("R30", "spending_pattern", ("mcc", "diversity", "category"),
           "Narrow or unusual spending pattern", "消费结构单一或异常"),
    _group("R31", "relationship", ("tenure", "since", "relationship"),
           "Short relationship with the bank", "与本行合作时间较短"),
    _group("R32", "activity", ("active", "count", "cnt", "days"),
           "Limited activity", "交易活跃度不足"),
    _group("R33", "profile", ("profile", "avg_amount", "max_amount"),
           "Unusual compared with the payer's usual activity", "与付款人日常交易习惯不符"),
    _group("R34", "income_stability", ("inflow_variab", "salary"),
           "Irregular income (salary) inflows", "收入（工资）入账不稳定"),
    _group("R35", "online_payments", ("epay", "payment_failed"),
           "Failed or unusual online payments", "线上支付失败或异常较多"),
)  # fmt: skip
OTHER_GROUP = ReasonGroup("R99", "other", (), "Other risk factors", "其他风险因素")
#: Where a missing input's contribution goes: a missing value (no bills, a payee never seen)
#: is no evidence of its group's fact ("late bills", "fraud reports"), only of thin history.
NO_HISTORY_GROUP = ReasonGroup(
    "R36", "no_history", (),
    "Little or no history to assess (new payee, account or customer)",
    "可参考的历史记录不足（新收款方、新账户或新客户）",
)  # fmt: skip
_GROUPS_BY_KEY = {
    k: g for g in (*REASON_GROUPS, OTHER_GROUP, NO_HISTORY_GROUP) for k in (g.code, g.name)
}
#: Other spellings of group names that feature declarations may use.
GROUP_ALIASES: dict[str, str] = {
    "repayment": "delinquency",
    "utilisation": "credit_usage",
    "utilization": "credit_usage",
    "bills": "bill_payments",
    "bill_payment": "bill_payments",
    "fraud_history": "counterpart_risk",
    "terminal_risk": "counterpart_risk",
    "stability": "spending_stability",
    "trend": "spending_trend",
    "mall": "mall_behaviour",
    "tenure": "relationship",
}


@dataclass(frozen=True)
class FeatureReason:
    """One adverse-action reason code of one prediction, traced to the feature that contributed
    most to it (not a decision reason: that is ``yidai.decisioning.reasons.Reason``)."""

    code: str
    text_en: str
    text_zh: str
    feature: str
    contribution: float

    def as_dict(self) -> dict[str, str | float]:
        return {
            "code": self.code,
            "text_en": self.text_en,
            "text_zh": self.text_zh,
            "feature": self.feature,
            "contribution": round(self.contribution, 6),
        }


def reason_group_of(feature: str, declared: str | None = None) -> ReasonGroup:
    """The reason group of a feature: its declared group (our code or name, or a known alias)
    if it names one, else the first group whose keyword appears in the feature name."""
    if declared is not None:
        key = GROUP_ALIASES.get(declared, declared)
        if key in _GROUPS_BY_KEY and key not in ("other", OTHER_GROUP.code):
            return _GROUPS_BY_KEY[key]
    name = feature.lower()
    for group in REASON_GROUPS:
        if any(k in name for k in group.keywords):
            return group
    return OTHER_GROUP


class ReasonCoder:
    """Turns a contribution matrix ``(n, n_features)`` into the top adverse reasons per row.

    Given the rows' inputs too, the contributions of missing (NaN) inputs count towards
    :data:`NO_HISTORY_GROUP` instead of their own group.
    """

    def __init__(
        self, feature_names: Sequence[str], declared: Mapping[str, str] | None = None
    ) -> None:
        declared = declared or {}
        self.feature_names = list(feature_names)
        groups = [reason_group_of(f, declared.get(f)) for f in self.feature_names]
        self.codes = sorted({g.code for g in groups} | {NO_HISTORY_GROUP.code})
        self._no_history = self.codes.index(NO_HISTORY_GROUP.code)
        self.group_of_feature = {f: g.code for f, g in zip(self.feature_names, groups, strict=True)}
        column = {code: i for i, code in enumerate(self.codes)}
        self._group_index = np.array([column[g.code] for g in groups], dtype=np.intp)

    def reasons(
        self, contributions: np.ndarray, top_k: int = 3, values: np.ndarray | None = None
    ) -> list[list[FeatureReason]]:
        """Top ``top_k`` reason groups with a positive (risk-raising) summed contribution per
        row, largest first; each names its largest contributing feature.  ``values`` (the
        rows' inputs, same shape): missing inputs count towards the no-history reason."""
        contrib = np.atleast_2d(np.asarray(contributions, dtype=np.float64))
        if contrib.shape[1] != len(self.feature_names):
            raise YidaiError(
                f"contributions have {contrib.shape[1]} columns, "
                f"expected {len(self.feature_names)} features"
            )
        # each input's group in each row: its own, or no-history where the input is missing
        group_index = np.broadcast_to(self._group_index, contrib.shape)
        if values is not None:
            missing = np.isnan(np.atleast_2d(np.asarray(values, dtype=np.float64)))
            if missing.shape != contrib.shape:
                raise YidaiError(f"values have shape {missing.shape}, expected {contrib.shape}")
            group_index = np.where(missing, self._no_history, group_index)
        n, n_groups = contrib.shape[0], len(self.codes)
        offsets = (group_index + n_groups * np.arange(n)[:, None]).ravel()
        per_group = np.bincount(offsets, contrib.ravel(), n * n_groups).reshape(n, n_groups)
        k = min(top_k, n_groups)
        order = np.argsort(-per_group, axis=1, kind="stable")[:, :k]
        result: list[list[FeatureReason]] = []
        for row, group_columns in enumerate(order):
            row_reasons: list[FeatureReason] = []
            for col in group_columns:
                value = float(per_group[row, col])
                if value <= 0:
                    break
                in_group = np.where(group_index[row] == col, contrib[row], -np.inf)
                top_feature = self.feature_names[int(np.argmax(in_group))]
                group = _GROUPS_BY_KEY[self.codes[col]]
                row_reasons.append(
                    FeatureReason(group.code, group.text_en, group.text_zh, top_feature, value)
                )
            result.append(row_reasons)
        return result
