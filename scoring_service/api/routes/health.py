"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from scoring_service.api.deps import OpsDetailsDep, OpsRequiredDep, StateDep
from scoring_service.schemas import HealthOut, ReadinessOut, error_responses

ERROR_OUT_REF = "#/components/schemas/ErrorOut"

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> dict[str, str]:
    """The process is up (even before any model or snapshot exists)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "Not ready: what is missing"}},
    # the key is optional: without one (or without the ops scope) the report is reduced
    openapi_extra={"security": [{}, {"APIKeyHeader": []}]},
)
async def readyz(state: StateDep, details: OpsDetailsDep) -> JSONResponse:
    """200 when every product can be decided; else 503.  With an ``ops`` key (or when
    keys are not required here), the report says what is loaded, missing or failed."""
    report = state.resources.status()
    if not details:
        report = {"ready": report["ready"], "loading": report["loading"]}
    return JSONResponse(report, status_code=200 if report["ready"] else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "Prometheus text exposition format 0.0.4"},
        **{  # JSON error bodies beside the text/plain exposition
            status: {
                "description": doc["description"],
                "content": {"application/json": {"schema": {"$ref": ERROR_OUT_REF}}},
            }
            for status, doc in error_responses(401, 403).items()
        },
    },
)
async def metrics(state: StateDep, _: OpsRequiredDep) -> Response:
    """Prometheus text format (a key with the ``ops`` scope, unless configured open)."""
    return Response(state.metrics.render(state.resources), media_type="text/plain; version=0.0.4")
