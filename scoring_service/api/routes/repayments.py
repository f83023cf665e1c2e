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
from scoring_service.schemas import (
    ErrorOut,
    RepaymentIn,
    RepaymentOut,
    RepaymentRejectedOut,
    error_responses,
)

router = APIRouter(prefix="/v1", tags=["revolving lines"], route_class=FastJSONRoute)


@router.post(
    "/repayments",
    response_model=RepaymentOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses={
        **error_responses(400, 401, 403, 408, 413, 422, 503),
        404: {
            "model": RepaymentRejectedOut,
            "description": "No such account (reason_code RP_UNKNOWN_ACCOUNT)",
        },
        409: {
            "model": RepaymentRejectedOut | ErrorOut,
            "description": "More than the outstanding balance (reason_code "
            "RP_EXCEEDS_OUTSTANDING), or the Idempotency-Key was used for a different "
            "request (reason_code IDEMPOTENCY_KEY_REUSED)",
        },
    },
)
async def post_repayment(
    body: RepaymentIn, auth: Annotated[Authorized, Depends(require_scope("repayments"))]
) -> PrebuiltJSONResponse:
    """Lower a line's outstanding balance (never below zero: an overpayment gets 409)."""
    state = auth.state
    answer = await state.call(
        repayment, state.resources, state.audit, body.model_dump(mode="json"), auth.caller
    )
    return PrebuiltJSONResponse(answer.json, status_code=answer.status_code)
