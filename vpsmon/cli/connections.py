"""Settings and database connections as every server subcommand opens them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pydantic import ValidationError

from vpsmon.errors import ConfigError
from vpsmon.settings import Settings
from vpsmon.storage.database import open_database
from vpsmon.storage.schema import upgrade_schema


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"VPSMON_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


@asynccontextmanager
async def migrated_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to an up-to-date schema (commands migrate first, as `up` would)."""
    async with open_database(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await upgrade_schema(conn, settings)
            yield conn
        finally:
            await conn.close()
