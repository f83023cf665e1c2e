"""Credit decisions: personal, merchant and SME; and the lookup of a stored decision."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from scoring_service.api.deps import (
    IDEMPOTENCY_HEADER,
    Authorized,
    require_scope,
)
from scoring_service.api.errors import ApiError
from scoring_service.api.fast_json import FastJSONRoute, PrebuiltJSONResponse
from scoring_service.decide import credit_decision
from scoring_service.schemas import (
    CreditDecisionOut,
    DecisionLookupOut,
    MerchantCreditIn,
    PersonalCreditIn,
    SmeCreditIn,
    error_responses,
)

router = APIRouter(prefix="/v1/decisions", tags=["credit decisions"], route_class=FastJSONRoute)
DECIDE_ERRORS = error_responses(400, 401, 403, 408, 409, 413, 422, 503)


async def _decide(auth: Authorized, product: str, body: dict[str, Any]) -> PrebuiltJSONResponse:
    state = auth.state
    answer = await state.call(
        credit_decision, state.resources, state.audit, product, body, auth.caller
    )
    state.metrics.count(product, answer)
    return PrebuiltJSONResponse(answer.json)


@router.post(
    "/personal-credit",
    response_model=CreditDecisionOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses=DECIDE_ERRORS,
)
async def personal_credit(
    body: PersonalCreditIn, auth: Annotated[Authorized, Depends(require_scope("personal-credit"))]
) -> PrebuiltJSONResponse:
    """Instant consumer credit (逸贷), e.g. at mall checkout."""
    return await _decide(auth, "personal", body.model_dump(mode="json"))


@router.post(
    "/merchant-credit",
    response_model=CreditDecisionOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses=DECIDE_ERRORS,
)
async def merchant_credit(
    body: MerchantCreditIn, auth: Annotated[Authorized, Depends(require_scope("merchant-credit"))]
) -> PrebuiltJSONResponse:
    """A small merchant's revolving line, underwritten on POS turnover."""
    return await _decide(auth, "merchant", body.model_dump(mode="json"))


@router.post(
    "/sme-credit",
    response_model=CreditDecisionOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses=DECIDE_ERRORS,
)
async def sme_credit(
    body: SmeCreditIn, auth: Annotated[Authorized, Depends(require_scope("sme-credit"))]
) -> PrebuiltJSONResponse:
    """SME revolving online loan (网贷通); an approval opens an account for drawdowns."""
    return await _decide(auth, "sme", body.model_dump(mode="json"))


@router.get(
    "/{decision_id}",
    response_model=DecisionLookupOut,
    responses=error_responses(401, 403, 404, 422),
)
async def get_decision(
    decision_id: str, auth: Annotated[Authorized, Depends(require_scope("decisions-read"))]
) -> dict[str, Any]:
    """A stored decision as it was sent, with the shadow challenger's outcome."""
    found = await auth.state.call(auth.state.audit.get_decision, decision_id)
    if found is None:
        raise ApiError(404, f"no decision {decision_id!r}", "UNKNOWN_DECISION")
    return {
        "decision_id": decision_id,
        "product": found["product"],
        "created_at": found["created_at"],
        "response": found["response"],
        "shadow": found["record"].get("shadow"),
    }
