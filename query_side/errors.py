"""API errors: one JSON shape, the right status, and never a 500 for bad input."""

from __future__ import annotations

import logging

import orjson
from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def bad_parameter(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> HTTPResponse:
    return HTTPResponse(
        orjson.dumps({"error": {"code": code, "message": message}}),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def register_error_handlers(app: Sanic) -> None:  # type: ignore[type-arg]
    @app.exception(ApiError)
    async def api_error(request: Request, error: ApiError) -> HTTPResponse:
        return error_response(error.status, error.code, error.message, error.headers)

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
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")
