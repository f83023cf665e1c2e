"""The JSON routes' fast path, through FastAPI's documented extension points only.

* :class:`PrebuiltJSONResponse`: the core (``scoring_service.decide``, ``.ledger``) builds
  each answer's JSON once (the bytes it also stores for idempotent replays); a route returns
  them in this ``Response`` subclass ("Return a Response directly" in FastAPI's docs), so they
  are sent unchanged.  The route's ``response_model`` documents them, and
  ``tests/scoring_service/test_service_responses.py`` checks every route's real answers
  against it (FastAPI does not validate a returned ``Response``).
* :class:`FastJSONRoute`: a custom ``APIRoute`` ("Custom Request and APIRoute class" in
  FastAPI's docs: ``get_route_handler`` wraps the route's own handler).  FastAPI's generic
  handler parses the content type with ``email.message``, the body with ``json.loads``, solves
  the dependency tree and validates the dict: ~0.1 ms of CPU per request, over 10 % of a
  whole credit decision (``docs/benchmarks.md``).  For an endpoint of the shape
  ``async def f(body: Model, auth: Annotated[Authorized, Depends(ScopeCheck(...))]) ->
  PrebuiltJSONResponse`` (read from its own signature, not from FastAPI's internals), a
  request with ``Content-Type: application/json`` whose body the model accepts
  (``model_validate_json`` on the raw bytes, in pydantic-core) gets the scope check and the
  endpoint called directly.  Any other request (another content type, a body that does not
  validate, ``app.dependency_overrides`` set) goes through FastAPI's own handler, so errors
  and their order are FastAPI's; the OpenAPI document comes from the same signature.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.params import Depends
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from scoring_service.api.deps import API_KEY_HEADER, Authorized, ScopeCheck

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class PrebuiltJSONResponse(Response):
    """A JSON body given as already-serialized bytes (or text), sent unchanged."""

    media_type = "application/json"


@dataclass(frozen=True, slots=True)
class DirectCall:
    """How :class:`FastJSONRoute` calls an endpoint: its body model and its scope check."""

    body_name: str
    model: type[BaseModel]
    auth_name: str
    check: ScopeCheck


def direct_call(endpoint: Callable[..., Any]) -> DirectCall | None:
    """The plan for ``async def endpoint(body: Model, auth: Annotated[Authorized,
    Depends(ScopeCheck)]) -> PrebuiltJSONResponse``; None for any other shape."""
    if not inspect.iscoroutinefunction(endpoint):
        return None
    try:
        hints = typing.get_type_hints(endpoint, include_extras=True)
    except (NameError, TypeError):
        return None
    names = list(inspect.signature(endpoint).parameters)
    if hints.get("return") is not PrebuiltJSONResponse or len(names) != 2:
        return None
    body, auth = names
    model, marked = hints[body], hints[auth]
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    if typing.get_origin(marked) is not Annotated or typing.get_args(marked)[0] is not Authorized:
        return None
    checks = [m.dependency for m in marked.__metadata__ if isinstance(m, Depends)]
    if len(checks) != 1 or not isinstance(checks[0], ScopeCheck):
        return None
    return DirectCall(body, model, auth, checks[0])


class FastJSONRoute(APIRoute):
    """A route that answers a well-formed JSON request of a :func:`direct_call` endpoint
    without FastAPI's generic parameter machinery (module docstring); other routes and
    requests are FastAPI's own."""

    def get_route_handler(self) -> Handler:
        generic = super().get_route_handler()
        plan = direct_call(self.endpoint)
        if plan is None:
            return generic
        endpoint, validate, check = self.endpoint, plan.model.model_validate_json, plan.check
        body_name, auth_name = plan.body_name, plan.auth_name

        async def handler(request: Request) -> Response:
            if (
                request.headers.get("content-type") != "application/json"
                or request.app.dependency_overrides
            ):
                return await generic(request)
            try:
                body = validate(await request.body())
            except ValidationError:
                return await generic(request)  # FastAPI's own 422 (or 401 / 403 first)
            auth = await check(request, request.headers.get(API_KEY_HEADER) or None)
            response: Response = await endpoint(**{body_name: body, auth_name: auth})
            return response

        return handler
