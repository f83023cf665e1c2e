"""Repayments on revolving lines, and the live state of a line (outstanding, available)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from scoring_service.api.deps import (
    IDEMPOTENCY_HEADER,
    Authorized,
    JsonBodyRoute,
    require_scope,
)
from scoring_service.api.errors import ApiError
from scoring_service.ledger import line_view, repayment
from scoring_service.schemas import (
    ErrorOut,
    LineOut,
    RepaymentIn,
    RepaymentOut,
    RepaymentRejectedOut,
    error_responses,
)

router = APIRouter(prefix="/v1", tags=["revolving lines"], route_class=JsonBodyRoute)


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
) -> Response:
    """Lower a line's outstanding balance (never below zero: an overpayment gets 409)."""
    state = auth.state
    answer = await state.call(
        repayment, state.resources, state.audit, body.model_dump(mode="json"), auth.caller
    )
    return Response(answer.json, status_code=answer.status_code, media_type="application/json")


@router.get(
    "/lines/{account_id}",
    response_model=LineOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_line(
    account_id: str, auth: Annotated[Authorized, Depends(require_scope("lines-read"))]
) -> dict[str, Any]:
    """A revolving line now: limit in force, outstanding balance, available amount."""
    state = auth.state
    found = await state.call(line_view, state.resources, state.audit, account_id)
    if found is None:
        raise ApiError(404, f"no revolving line with account id {account_id!r}", "UNKNOWN_ACCOUNT")
    return found
