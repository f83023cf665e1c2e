"""Reason codes: the policy's own codes and the shape shared with the models' codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

ReasonSource = Literal["policy", "model"]


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason behind a decision (adverse-action reason for declines and refers): a policy
    code or a model's ``models.reasons.FeatureReason`` normalised by :func:`model_reasons`."""

    code: str
    source: ReasonSource
    text: str
    text_zh: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "source": self.source,
            "text": self.text,
            "text_zh": self.text_zh,
        }


# code -> (English, Chinese) for rules that are not declared in the policy file itself.
POLICY_REASONS: dict[str, tuple[str, str]] = {
    "HR_BLOCKLIST": ("Applicant is on the blocklist", "申请人在禁入名单中"),
    "HR_NO_HISTORY": (
        "Not enough transaction history with the bank to assess the application",
        "在本行的交易记录不足, 无法评估",
    ),
    "SC_SCORE_BELOW_CUTOFF": ("Risk score below the approval cut-offs", "风险评分低于审批门槛"),
    "SC_SCORE_REFER_BAND": ("Risk score in the review band", "风险评分处于复核区间"),
    "SC_PD_ABOVE_MAX": ("Probability of default above the policy maximum", "违约概率高于政策上限"),
    "LM_BELOW_MINIMUM": (
        "Affordable limit below the product minimum",
        "可授信额度低于产品最低额度",
    ),
    "PR_GRADE_NOT_PRICED": ("Risk grade has no price in the policy", "该风险等级无定价"),
    "LM_CAPPED_BY_LIMIT": (
        "Approved less than requested: the amount is capped at the affordable limit",
        "批准金额低于申请金额: 以可授信额度为上限",
    ),
    "EX_EXISTING_LINE": (
        "The borrower already has a line: handled as a review of that line, not a new one",
        "借款人已有授信额度: 按额度复核处理, 不新开额度",
    ),
    "EX_BORROWER_CAP": (
        "Total exposure to the borrower would exceed the policy cap",
        "对该借款人的总敞口将超过政策上限",
    ),
    "EX_CAPPED_BY_BORROWER_CAP": (
        "Approved less than the limit: capped by the borrower exposure cap",
        "批准额度受借款人敞口上限限制",
    ),
    "EX_PRODUCT_CAP": (
        "The product's total committed exposure would exceed the policy cap",
        "该产品总承诺敞口将超过政策上限",
    ),
    "PF_FRAUD_DECLINE": (
        "Fraud risk above the decline threshold of this amount tier",
        "欺诈风险高于该金额档位的拒绝阈值",
    ),
    "PF_FRAUD_STEP_UP": (
        "Fraud risk above the step-up threshold of this amount tier",
        "欺诈风险高于该金额档位的加强验证阈值",
    ),
    "PF_NEW_DEVICE": ("Large payment from a device not seen before", "新设备发起的大额支付"),
}


def policy_reason(code: str, text: str = "", text_zh: str = "") -> Reason:
    """A policy reason, with the standard texts unless given."""
    en, zh = POLICY_REASONS.get(code, (code, ""))
    return Reason(code, "policy", text or en, text_zh or zh)


def model_reasons(raw: Iterable[Any]) -> tuple[Reason, ...]:
    """Normalise a model's reason codes (strings, dicts or objects with ``code``)."""
    out: list[Reason] = []
    for item in raw:
        if isinstance(item, Reason):
            out.append(item)
        elif isinstance(item, str):
            out.append(Reason(item, "model", item))
        elif isinstance(item, dict):
            code = str(item.get("code", item.get("feature", "")))
            text = str(item.get("text", item.get("text_en", item.get("description", code))))
            out.append(Reason(code, "model", text, str(item.get("text_zh", ""))))
        else:
            code = str(getattr(item, "code", item))
            text = str(getattr(item, "text", getattr(item, "text_en", code)))
            out.append(Reason(code, "model", text, str(getattr(item, "text_zh", ""))))
    return tuple(out)
