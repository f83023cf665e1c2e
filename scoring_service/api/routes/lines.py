"""Revolving lines: drawdowns (atomic limit check) and the published merchant limits."""

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
from scoring_service.ledger import drawdown
from scoring_service.schemas import DrawdownIn, DrawdownOut, MerchantLimitOut, error_responses

router = APIRouter(prefix="/v1", tags=["revolving lines"], route_class=JsonBodyRoute)


@router.post(
    "/drawdowns",
    response_model=DrawdownOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses=error_responses(400, 401, 403, 408, 409, 413, 422, 503),
)
async def post_drawdown(
    body: DrawdownIn, auth: Annotated[Authorized, Depends(require_scope("drawdowns"))]
) -> Response:
    """Draw within limit minus outstanding; two concurrent drawdowns never exceed it."""
    state = auth.state
    answer = await state.call(
        drawdown, state.resources, state.audit, body.model_dump(mode="json"), auth.caller
    )
    return Response(answer.json, media_type="application/json")


@router.get(
    "/merchants/{merchant_id}/limit",
    response_model=MerchantLimitOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def merchant_limit(
    merchant_id: str, auth: Annotated[Authorized, Depends(require_scope("limits-read"))]
) -> dict[str, Any]:
    """The merchant's line in the live version of the nightly limit refresh."""
    limits = auth.state.resources.limits_in_force()
    found = limits.get(merchant_id)
    if found is None:
        raise ApiError(
            404, f"merchant {merchant_id!r} has no published limit", "NO_PUBLISHED_LIMIT"
        )
    return {**found.as_dict(), "limits_version": limits.version, "as_of": str(limits.as_of)}
