"""Where the database is: VPSMON_DATABASE_URL, or the embedded cluster started on demand."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg

from vpsmon.settings import Settings
from vpsmon.storage.dsn import with_database
from vpsmon.storage.embedded import EmbeddedPostgres, default_data_dir

logger = logging.getLogger(__name__)

EMBEDDED_DATABASE = "vpsmon"


@contextmanager
def database_dsn(settings: Settings) -> Iterator[str]:
    """The configured DSN; or start (or join) the embedded cluster and stop it on exit."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(default_data_dir())
    try:
        yield _start_embedded(server)
    finally:
        server.stop()


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[str]:
    """The same for code already inside an event loop."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(default_data_dir())
    try:
        yield await asyncio.to_thread(_start_embedded, server)
    finally:
        await asyncio.to_thread(server.stop)


def _start_embedded(server: EmbeddedPostgres) -> str:
    """Start (or join) the cluster and make sure vpsmon's database exists in it.

    Blocking; the async caller runs it in a thread, where asyncio.run is free to use.
    """
    server_dsn = server.start()
    asyncio.run(_ensure_database(server_dsn, EMBEDDED_DATABASE))
    return with_database(server_dsn, EMBEDDED_DATABASE)


async def _ensure_database(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                logger.info("created database %s in the embedded cluster", name)
            except asyncpg.DuplicateDatabaseError:
                pass  # another vpsmon process created it first
    finally:
        await conn.close()
