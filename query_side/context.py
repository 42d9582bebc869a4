"""What every request handler can reach: the pool, the latest-values cache, settings."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from sanic import Request

from query_side.latest_cache import LatestValuesCache
from vpsmon.settings import Settings
from vpsmon.storage.backend import Backend


@dataclass
class AppState:
    settings: Settings
    dsn: str
    pool: asyncpg.Pool
    cache: LatestValuesCache
    backend: Backend


def state(request: Request) -> AppState:
    app_state: AppState = request.app.ctx.state
    return app_state
