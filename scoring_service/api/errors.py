"""The service's one error shape (:class:`scoring_service.schemas.ErrorOut`) and the
exception that carries its reason code."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException
from fastapi.responses import JSONResponse

# The reason code of an HTTP error raised without one, by status.
DEFAULT_REASONS: dict[int, str] = {
    400: "MALFORMED_BODY",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    422: "INVALID_REQUEST",
    503: "NOT_READY",
}


class ApiError(HTTPException):
    """An HTTP error with its reason code (see ``schemas.ERROR_REASONS``)."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        reason_code: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, detail, dict(headers) if headers else None)
        self.reason_code = reason_code


def error_response(
    status_code: int,
    detail: str,
    reason_code: str | None = None,
    *,
    errors: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An ``ErrorOut`` body (reason code by status when not given)."""
    code = reason_code or DEFAULT_REASONS.get(status_code, "HTTP_ERROR")
    body = {"detail": detail, "reason_code": code, "errors": errors}
    return JSONResponse(body, status_code=status_code, headers=headers)
