"""The Sanic app factory for the query side."""

from __future__ import annotations

import asyncpg
from sanic import Sanic

from query_side.context import AppState
from query_side.errors import register_error_handlers
from query_side.latest_cache import LatestValuesCache
from query_side.request_metrics import record_requests
from query_side.routes import auth, metrics, system, vps
from query_side.routes.ui import ui_blueprint, ui_directory
from query_side.security_headers import add_security_headers
from vpsmon.constants import DATABASE_CONNECT_TIMEOUT_S
from vpsmon.errors import MigrationError
from vpsmon.settings import Settings
from vpsmon.storage.backend import recorded_backend


def create_app(settings: Settings, dsn: str, name: str = "vpsmon") -> Sanic:  # type: ignore[type-arg]
    """One app per worker process; each holds its own pool and cache."""
    app: Sanic = Sanic(name)  # type: ignore[type-arg]
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.config.REQUEST_MAX_SIZE = 64 * 1024
    register_error_handlers(app)
    add_security_headers(app)
    record_requests(app)
    for blueprint in (system.bp, auth.bp, vps.bp, metrics.bp):
        app.blueprint(blueprint)
    ui_dir = ui_directory()
    if ui_dir is not None:
        app.blueprint(ui_blueprint(ui_dir))

    @app.before_server_start
    async def open_resources(app: Sanic) -> None:  # type: ignore[type-arg]
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=8, timeout=DATABASE_CONNECT_TIMEOUT_S
        )
        async with pool.acquire() as conn:
            backend = await recorded_backend(conn)
        if backend is None:
            raise MigrationError("the database has no vpsmon schema: run `vpsmon migrate`")
        cache = LatestValuesCache(dsn)
        cache.start()
        app.ctx.state = AppState(settings, dsn, pool, cache, backend)

    @app.after_server_stop
    async def close_resources(app: Sanic) -> None:  # type: ignore[type-arg]
        app_state: AppState = app.ctx.state
        await app_state.cache.close()
        await app_state.pool.close()

    return app
