"""API errors: one JSON shape, the right status, and never a 500 for bad input.

Handlers raise vpsmon.errors; HTTP_ERRORS is the one table that turns each
branch into a status and a code, the most specific class winning. Anything
outside it is logged and answered with a 500 that reveals nothing.
"""

from __future__ import annotations

import logging

import orjson
from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse

from vpsmon.errors import (
    InvalidBodyError,
    InvalidInputError,
    LoginRefused,
    LoginThrottledError,
    NotAuthenticatedError,
    NotFoundError,
    StorageUnavailableError,
    UnsupportedMediaTypeError,
    VpsmonError,
)

logger = logging.getLogger(__name__)

# Error class -> (HTTP status, the "code" clients branch on).
HTTP_ERRORS: dict[type[VpsmonError], tuple[int, str]] = {
    InvalidInputError: (400, "invalid_parameter"),
    UnsupportedMediaTypeError: (415, "unsupported_media_type"),
    InvalidBodyError: (422, "invalid_body"),
    NotAuthenticatedError: (401, "unauthorized"),
    LoginRefused: (401, "invalid_credentials"),
    LoginThrottledError: (429, "too_many_attempts"),
    NotFoundError: (404, "not_found"),
    StorageUnavailableError: (503, "unavailable"),
}


def http_status(error: VpsmonError) -> tuple[int, str] | None:
    """(status, code) for the most specific class of ``error`` in the table, if any."""
    for cls in type(error).__mro__:
        found = HTTP_ERRORS.get(cls)
        if found is not None:
            return found
    return None


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> HTTPResponse:
    return HTTPResponse(
        orjson.dumps({"error": {"code": code, "message": message}}),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _internal_error(request: Request, error: Exception) -> HTTPResponse:
    logger.exception("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return error_response(500, "internal_error", "internal server error")


def register_error_handlers(app: Sanic) -> None:  # type: ignore[type-arg]
    @app.exception(VpsmonError)
    async def vpsmon_error(request: Request, error: VpsmonError) -> HTTPResponse:
        mapped = http_status(error)
        if mapped is None:
            return _internal_error(request, error)
        retry_after = getattr(error, "retry_after_seconds", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return error_response(*mapped, str(error), headers)

    @app.exception(SanicException)
    async def sanic_error(request: Request, error: SanicException) -> HTTPResponse:
        status = error.status_code
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            status, "bad_request" if status < 500 else "internal_error"
        )
        message = str(error) if status < 500 else "internal server error"
        return error_response(status, code, message)

    @app.exception(Exception)
    async def unexpected(request: Request, error: Exception) -> HTTPResponse:
        return _internal_error(request, error)
