"""Repayments on revolving lines, and the live state of a line (outstanding, available)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response

from scoring_service.api.deps import (
    IDEMPOTENCY_HEADER,
    Authorized,
    JsonBodyRoute,
    require_scope,
)
from scoring_service.ledger import line_view, repayment
from scoring_service.schemas import LineOut, RepaymentIn, RepaymentOut, RepaymentRejectedOut

router = APIRouter(prefix="/v1", tags=["revolving lines"], route_class=JsonBodyRoute)


@router.post(
    "/repayments",
    response_model=RepaymentOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses={
        404: {"model": RepaymentRejectedOut, "description": "No such account"},
        409: {"model": RepaymentRejectedOut, "description": "More than the outstanding balance"},
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


@router.get("/lines/{account_id}", response_model=LineOut)
async def get_line(
    account_id: str, auth: Annotated[Authorized, Depends(require_scope("lines-read"))]
) -> dict[str, Any]:
    """A revolving line now: limit in force, outstanding balance, available amount."""
    state = auth.state
    found = await state.call(line_view, state.resources, state.audit, account_id)
    if found is None:
        raise HTTPException(404, f"no revolving line with account id {account_id!r}")
    return found
