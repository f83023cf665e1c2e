"""Payment risk: allow / step-up / decline by amount tier."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from scoring_service.api.deps import (
    IDEMPOTENCY_HEADER,
    Authorized,
    require_scope,
)
from scoring_service.api.fast_json import FastJSONRoute, PrebuiltJSONResponse
from scoring_service.decide import payment_decision
from scoring_service.schemas import PaymentRiskIn, PaymentRiskOut, error_responses

router = APIRouter(prefix="/v1/payments", tags=["payment risk"], route_class=FastJSONRoute)


@router.post(
    "/risk",
    response_model=PaymentRiskOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses=error_responses(400, 401, 403, 408, 409, 413, 422, 503),
)
async def payment_risk(
    body: PaymentRiskIn, auth: Annotated[Authorized, Depends(require_scope("payment-risk"))]
) -> PrebuiltJSONResponse:
    """Small amounts favour convenience, large amounts favour security."""
    state = auth.state
    answer = await state.call(
        payment_decision, state.resources, state.audit, body.model_dump(mode="json"), auth.caller
    )
    state.metrics.count("payment", answer)
    return PrebuiltJSONResponse(answer.json)
