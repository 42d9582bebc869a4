"""`vpsmon query-side`: Sanic with several workers over one database.

The main process finds (or starts) the database and migrates it; each worker
builds its own app, pool and latest-values cache. Background work (rollup
refresh, retention) is the command side's maintenance runner's, not theirs.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from sanic import Sanic
from sanic.worker.loader import AppLoader

from query_side.app import create_app
from vpsmon.self_metrics import share_with_workers
from vpsmon.settings import Settings
from vpsmon.storage.database import database_dsn
from vpsmon.storage.schema import upgrade_database

logger = logging.getLogger(__name__)


def run(settings: Settings, workers: int) -> int:
    share_with_workers()
    host, _, port = settings.http_listen.rpartition(":")
    with database_dsn(settings) as dsn:
        asyncio.run(upgrade_database(dsn, settings))
        loader = AppLoader(factory=partial(create_app, settings, dsn))
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
