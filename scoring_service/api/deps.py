"""FastAPI dependencies: the service state, settings, authenticated callers with scopes.

All are ``async def``: they do no I/O, and FastAPI would run plain ``def`` dependencies in
its thread pool (a thread hop each, milliseconds under load).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from scoring_service.audit import AuditStore
from scoring_service.decide import Caller
from scoring_service.metrics import Metrics
from scoring_service.resources import Resources
from yidai.settings import Settings

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Key of the calling module."
)


@dataclass
class ServiceState:
    """Everything the routes need, created by the app's lifespan."""

    settings: Settings
    resources: Resources
    audit: AuditStore
    metrics: Metrics


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.yidai
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_resources(state: StateDep) -> Resources:
    return state.resources


async def get_audit(state: StateDep) -> AuditStore:
    return state.audit


ResourcesDep = Annotated[Resources, Depends(get_resources)]
AuditDep = Annotated[AuditStore, Depends(get_audit)]


IDEMPOTENCY_HEADER: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
            "description": "Retries with the same key get the original response back.",
        }
    ]
}


@dataclass(frozen=True, slots=True)
class Authorized:
    """An authenticated caller with the scope the route needs, and the service state."""

    state: ServiceState
    caller: Caller


def require_scope(scope: str):  # type: ignore[no-untyped-def]
    """A dependency that authenticates the caller and checks ``scope`` (401 / 403).

    It reads the state from the request itself, so a route needs no other dependency.
    """

    async def dependency(
        request: Request, api_key: Annotated[str | None, Security(api_key_header)]
    ) -> Authorized:
        # Idempotency-Key is read here rather than declared as a Header parameter: FastAPI's
        # parameter machinery costs more than the lookup (it is documented in the OpenAPI
        # document through IDEMPOTENCY_HEADER).
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 128:
            raise HTTPException(422, "Idempotency-Key must be 1 to 128 characters")
        state: ServiceState = request.app.state.yidai
        if not api_key:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key (header X-API-Key)",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        key = state.resources.keys.verify(api_key)
        if key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid API key",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        if scope not in key.scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"module {key.module!r} has no scope {scope!r}",
            )
        return Authorized(state, Caller(key.module, idempotency_key))

    return dependency
