"""Revolving lines: drawdowns (atomic limit check) and the published merchant limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response

from scoring_service.api.deps import (
    IDEMPOTENCY_HEADER,
    Authorized,
    JsonBodyRoute,
    require_scope,
)
from scoring_service.ledger import drawdown
from scoring_service.schemas import DrawdownIn, DrawdownOut, MerchantLimitOut

router = APIRouter(prefix="/v1", tags=["revolving lines"], route_class=JsonBodyRoute)


@router.post("/drawdowns", response_model=DrawdownOut, openapi_extra=IDEMPOTENCY_HEADER)
async def post_drawdown(
    body: DrawdownIn, auth: Annotated[Authorized, Depends(require_scope("drawdowns"))]
) -> Response:
    """Draw within limit minus outstanding; two concurrent drawdowns never exceed it."""
    state = auth.state
    answer = await state.call(
        drawdown, state.resources, state.audit, body.model_dump(mode="json"), auth.caller
    )
    return Response(answer.json, media_type="application/json")


@router.get("/merchants/{merchant_id}/limit", response_model=MerchantLimitOut)
async def merchant_limit(
    merchant_id: str, auth: Annotated[Authorized, Depends(require_scope("limits-read"))]
) -> dict[str, Any]:
    """The merchant's line in the live version of the nightly limit refresh."""
    limits = auth.state.resources.limits_in_force()
    found = limits.get(merchant_id)
    if found is None:
        raise HTTPException(404, f"merchant {merchant_id!r} has no published limit")
    return {**found.as_dict(), "limits_version": limits.version, "as_of": str(limits.as_of)}
