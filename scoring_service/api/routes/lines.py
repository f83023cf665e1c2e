"""Revolving lines: drawdowns (atomic limit check), the live state of a line (outstanding,
available) and the published merchant limits."""

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
from scoring_service.ledger import drawdown, line_view, merchant_limit_view
from scoring_service.schemas import (
    DrawdownIn,
    DrawdownOut,
    LineOut,
    MerchantLimitOut,
    error_responses,
)

router = APIRouter(prefix="/v1", tags=["revolving lines"], route_class=FastJSONRoute)


@router.post(
    "/drawdowns",
    response_model=DrawdownOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses=error_responses(400, 401, 403, 408, 409, 413, 422, 503),
)
async def post_drawdown(
    body: DrawdownIn, auth: Annotated[Authorized, Depends(require_scope("drawdowns"))]
) -> PrebuiltJSONResponse:
    """Draw within limit minus outstanding; two concurrent drawdowns never exceed it."""
    state = auth.state
    answer = await state.call(
        drawdown, state.resources, state.audit, body.model_dump(mode="json"), auth.caller
    )
    return PrebuiltJSONResponse(answer.json)


@router.get(
    "/merchants/{merchant_id}/limit",
    response_model=MerchantLimitOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def merchant_limit(
    merchant_id: str, auth: Annotated[Authorized, Depends(require_scope("limits-read"))]
) -> dict[str, Any]:
    """The merchant's line in the live version of the nightly limit refresh, named by the
    account id drawdowns, repayments and ``GET /v1/lines/{account_id}`` use."""
    state = auth.state
    found = await state.call(merchant_limit_view, state.resources, state.audit, merchant_id)
    if found is None:
        raise ApiError(
            404, f"merchant {merchant_id!r} has no published limit", "NO_PUBLISHED_LIMIT"
        )
    return found


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
