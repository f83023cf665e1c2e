"""FastAPI dependencies: the service state, settings, authenticated callers with scopes.

All are ``async def``: they do no I/O, and FastAPI would run plain ``def`` dependencies in
its thread pool (a thread hop each, milliseconds under load).

The routes are ``async`` too and reach the audit store through :meth:`ServiceState.call`:
on the embedded SQLite file a store call takes tens of microseconds and runs inline; on
PostgreSQL it waits for network round trips (and row locks), so the whole call runs in a
worker thread, at most as many at once as the store has connections, and the event loop
keeps serving other requests meanwhile.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from scoring_service.decide import Caller
from scoring_service.guard import SCOPE_KEY
from scoring_service.metrics import Metrics
from scoring_service.resources import Resources
from yidai.audit import AuditStore
from yidai.core.settings import Settings

API_KEY_HEADER = "X-API-Key"
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="Key of the calling module."
)


P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class ServiceState:
    """Everything the routes need, created by the app's lifespan (in its event loop)."""

    settings: Settings
    resources: Resources
    audit: AuditStore
    metrics: Metrics
    # Worker threads for store calls, as many as the store's connection pool: a request
    # beyond that waits here (without holding a thread or blocking the loop), not in the pool.
    store_limiter: anyio.CapacityLimiter | None = field(init=False)

    def __post_init__(self) -> None:
        calls = self.audit.max_concurrent_calls
        self.store_limiter = None if calls is None else anyio.CapacityLimiter(calls)

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)``, a call that uses the audit store: inline on SQLite, in
        a worker thread on PostgreSQL (the event loop is not blocked while it waits).

        A cancelled request (client gone) still waits for its call to finish, so a decision
        is either fully recorded or not at all, as before.
        """
        if self.store_limiter is None:
            return fn(*args, **kwargs)
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self.store_limiter
        )


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.yidai
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


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


class ScopeCheck:
    """The dependency of a route that needs ``scope``: authenticates the caller (401),
    checks the scope (403) and the ``Idempotency-Key`` header (422).

    It reads the state from the request itself, so a route needs no other dependency.
    """

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(
        self, request: Request, api_key: Annotated[str | None, Security(api_key_header)]
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
        key = request.scope.get(SCOPE_KEY) or state.resources.keys.verify(api_key)
        if key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid API key",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        if self.scope not in key.scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"module {key.module!r} has no scope {self.scope!r}",
            )
        return Authorized(state, Caller(key.module, idempotency_key))


class OpsCheck:
    """The operators' endpoints (``/metrics``, the detailed ``/readyz``): a key with the
    ``ops`` scope when ``settings.ops_endpoints_require_key`` (the default), else open.

    ``strict``: answer 401 / 403 without one; otherwise tell the route (False) so that it
    can answer a reduced report.
    """

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self._scope = ScopeCheck("ops")

    async def __call__(
        self, request: Request, api_key: Annotated[str | None, Security(api_key_header)]
    ) -> bool:
        state: ServiceState = request.app.state.yidai
        if not state.settings.ops_endpoints_require_key:
            return True
        try:
            await self._scope(request, api_key)
        except HTTPException:
            if self.strict:
                raise
            return False
        return True


OpsDetailsDep = Annotated[bool, Depends(OpsCheck(strict=False))]
OpsRequiredDep = Annotated[bool, Depends(OpsCheck(strict=True))]


def require_scope(scope: str) -> ScopeCheck:
    """A dependency that authenticates the caller and checks ``scope`` (401 / 403)."""
    return ScopeCheck(scope)
