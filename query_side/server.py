"""`vpsmon query-side`: Sanic with several workers over one database.

The main process finds (or starts) the database and migrates it; each worker
builds its own app, pool and latest-values cache, and runs the projection
rollup refresh (advisory locks keep that to one at a time); retention is the
command side's, since vpsmon_query may not delete measurements.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import asyncpg
from sanic import Sanic
from sanic.worker.loader import AppLoader

from projections.maintenance import run_projection_maintenance
from query_side.app import create_app
from query_side.context import AppState
from vpsmon.self_metrics import share_with_workers
from vpsmon.settings import Settings
from vpsmon.storage.database import database_dsn
from vpsmon.storage.schema import upgrade_schema

logger = logging.getLogger(__name__)


def build_app(settings: Settings, dsn: str) -> Sanic:  # type: ignore[type-arg]
    app = create_app(settings, dsn)
    stop = asyncio.Event()

    @app.after_server_start
    async def start_upkeep(app: Sanic) -> None:  # type: ignore[type-arg]
        app_state: AppState = app.ctx.state
        app.add_task(
            run_projection_maintenance(
                app_state.pool, app_state.backend, settings, stop, retention=False
            ),
            name="projection-maintenance",
        )

    @app.before_server_stop
    async def stop_upkeep(app: Sanic) -> None:  # type: ignore[type-arg]
        stop.set()

    return app


async def _prepare(settings: Settings, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await upgrade_schema(conn, settings)
    finally:
        await conn.close()


def run(settings: Settings, workers: int) -> int:
    share_with_workers()
    host, _, port = settings.http_listen.rpartition(":")
    with database_dsn(settings) as dsn:
        asyncio.run(_prepare(settings, dsn))
        loader = AppLoader(factory=partial(build_app, settings, dsn))
        app = loader.load()
        app.prepare(
            host=host.strip("[]") or "127.0.0.1",
            port=int(port),
            workers=workers,
            access_log=False,
            motd=False,
        )
        print(f"query side listening on http://{settings.http_listen}", flush=True)
        Sanic.serve(primary=app, app_loader=loader)
    return 0
