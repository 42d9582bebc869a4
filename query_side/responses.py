"""JSON responses via orjson, times as RFC 3339 UTC."""

from __future__ import annotations

from typing import Any

import orjson
from sanic.response import HTTPResponse

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTIONS)


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> HTTPResponse:
    return HTTPResponse(
        dumps(value), status=status, headers=headers, content_type="application/json"
    )
