"""The FastAPI application: ``create_app(settings=None)``; run with ``yidai serve``.

The lifespan opens the audit store and starts the resource holder, whose first load runs in
its background thread: the service answers ``/healthz`` at once, reports what is missing in
``/readyz`` and answers decision calls with 503 until their product is loaded.

Every error answer has one shape, ``ErrorOut`` (``detail``, ``reason_code``, ``errors``), and
the OpenAPI document says so.  ``/docs`` (Swagger UI) and ``/redoc`` load their scripts from
the installed ``fastapi-offline`` package under ``/static-docs``: no CDN, closed networks work.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from models._runtime import import_lightgbm_for_scoring
from scoring_service.api.deps import ServiceState
from scoring_service.api.errors import error_response
from scoring_service.api.routes import decisions, health, lines, payments, repayments
from scoring_service.guard import RequestGuard
from scoring_service.metrics import Metrics, MetricsMiddleware
from scoring_service.resources import Loaders, NotReady, Resources
from yidai.audit import (
    AuditStore,
    IdempotencyConflict,
    load_hash_key,
    load_previous_hash_keys,
)
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings, get_settings

log = logging.getLogger("scoring_service")

# Swagger UI and ReDoc assets shipped in the fastapi-offline wheel, served at DOCS_STATIC.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_STATIC = "/static-docs"
# The docs pages may load from this server only (ReDoc's footer logo is on cdn.redoc.ly).
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


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
        docs_url=None,  # served below from the package's own assets (no CDN)
        redoc_url=None,
    )
    for module in (decisions, payments, lines, repayments, health):
        app.include_router(module.router)
    app.add_middleware(RequestGuard)  # key before body, body size and deadline
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _offline_docs(app)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = getattr(exc, "reason_code", None)
        return error_response(exc.status_code, str(exc.detail), reason, headers=exc.headers)

    @app.exception_handler(NotReady)
    async def _not_ready(_: Request, exc: NotReady) -> JSONResponse:
        return error_response(503, str(exc), exc.reason_code, headers={"Retry-After": "5"})

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return error_response(409, str(exc), "IDEMPOTENCY_KEY_REUSED")

    @app.exception_handler(YidaiError)
    async def _user_error(_: Request, exc: YidaiError) -> JSONResponse:
        return error_response(422, str(exc), "REQUEST_REJECTED")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        # The offending input values are not echoed (they may hold personal data).
        detail = "invalid request: " + "; ".join(problems)
        return error_response(422, detail, "INVALID_REQUEST", errors=problems)

    return app


def serving_app() -> FastAPI:
    """The app of a ``yidai serve`` worker (uvicorn's factory): :func:`create_app` in a
    process kept lean.  LightGBM comes without scikit-learn, pandas or pyarrow
    (:func:`models._runtime.import_lightgbm_for_scoring`) and the registry is read without
    MLflow (:class:`models.registry.LocalRegistryReader`)."""
    if "lightgbm" not in sys.modules:
        import_lightgbm_for_scoring()
    return create_app()


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` on the packaged assets (mounted at ``DOCS_STATIC``)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=DOCS_ASSETS), name="static-docs")
    title = f"{app.title} - API documentation"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to validator.swagger.io
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            redoc_js_url=f"{root}{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page
