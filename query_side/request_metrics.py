"""The query side's part of the self-metrics: responses by route and status,
and a stopping worker leaving the merge of the workers' values."""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

from vpsmon.self_metrics import SELF_METRICS, forget_this_process

# The route label of a request that matched no route (404, or a bad method).
UNMATCHED = "unmatched"


def record_requests(app: Sanic) -> None:  # type: ignore[type-arg]
    async def count_response(request: Request, response: BaseHTTPResponse) -> None:
        route = request.uri_template or UNMATCHED
        SELF_METRICS.http_requests.labels(route, str(response.status)).inc()

    app.register_middleware(count_response, "response")

    @app.after_server_stop
    async def leave_the_merge(app: Sanic) -> None:  # type: ignore[type-arg]
        forget_this_process()
