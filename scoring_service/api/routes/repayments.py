"""Repayments on revolving lines."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from scoring_service.api.deps import (
    IDEMPOTENCY_HEADER,
    Authorized,
    require_scope,
)
from scoring_service.api.fast_json import FastJSONRoute, PrebuiltJSONResponse
from scoring_service.ledger import repayment
from scoring_service.schemas import RepaymentIn, RepaymentOut, error_responses

router = APIRouter(prefix="/v1", tags=["revolving lines"], route_class=FastJSONRoute)


@router.post(
    "/repayments",
    response_model=RepaymentOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses=error_responses(400, 401, 403, 408, 409, 413, 422, 503),
)
async def post_repayment(
    body: RepaymentIn, auth: Annotated[Authorized, Depends(require_scope("repayments"))]
) -> PrebuiltJSONResponse:
    """Lower a line's outstanding balance, never below zero: an overpayment or an unknown
    account is refused with HTTP 200, ``status: "rejected"`` and the reason codes."""
    state = auth.state
    answer = await state.call(
        repayment, state.resources, state.audit, body.model_dump(mode="json"), auth.caller
    )
    return PrebuiltJSONResponse(answer.json, status_code=answer.status_code)
