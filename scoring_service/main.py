"""The FastAPI application: ``create_app(settings=None)``; run with ``yidai serve``.

The lifespan opens the audit store and starts the resource holder, whose first load runs in
its background thread: the service answers ``/healthz`` at once, reports what is missing in
``/readyz`` and answers decision calls with 503 until their product is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from scoring_service.api.deps import ServiceState
from scoring_service.api.routes import decisions, health, lines, payments, repayments
from scoring_service.audit import (
    AuditStore,
    IdempotencyConflict,
    load_hash_key,
    load_previous_hash_keys,
)
from scoring_service.guard import RequestGuard
from scoring_service.metrics import Metrics, MetricsMiddleware
from scoring_service.resources import Loaders, NotReady, Resources
from yidai.errors import YidaiError
from yidai.settings import Settings, get_settings

log = logging.getLogger("scoring_service")


def create_app(
    settings: Settings | None = None,
    *,
    loaders: Loaders | None = None,
    background_reload: bool = True,
) -> FastAPI:
    """Build the app; ``loaders`` replaces the MLflow / snapshot loaders (tests, tools)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or get_settings()
        if not logging.getLogger().handlers:  # uvicorn workers: show reloads and problems
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
        audit = AuditStore(
            cfg.audit_url,
            sqlite_synchronous=cfg.audit_sqlite_synchronous,
            hash_key=load_hash_key(cfg),
            previous_hash_keys=load_previous_hash_keys(cfg),
            wal_limit_bytes=int(cfg.audit_sqlite_wal_limit_mb * 2**20),
        )
        resources = Resources(cfg, loaders)
        app.state.yidai = ServiceState(cfg, resources, audit, metrics)
        if background_reload:
            resources.start_background()
        else:
            resources.refresh()
        try:
            yield
        finally:
            resources.stop()
            audit.close()

    app = FastAPI(
        title="Yidai scoring service",
        version="1.0",
        description="Instant credit decisions and payment risk for the bank's storefront "
        "modules (mall checkout, payment page, direct bank).",
        lifespan=lifespan,
    )
    for module in (decisions, payments, lines, repayments, health):
        app.include_router(module.router)
    app.add_middleware(RequestGuard)  # key before body, body size and deadline
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(NotReady)
    async def _not_ready(_: Request, exc: NotReady) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(YidaiError)
    async def _user_error(_: Request, exc: YidaiError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        # The offending input values are not echoed (they may hold personal data).
        return JSONResponse(
            {"detail": "invalid request: " + "; ".join(problems), "errors": problems},
            status_code=422,
        )

    return app
