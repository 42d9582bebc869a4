"""Fixtures the query-side tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from vpsmon.settings import Settings
from vpsmon.storage.schema import upgrade_schema


@pytest.fixture
async def conn(embedded_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a freshly migrated database on the embedded server."""
    connection = await asyncpg.connect(embedded_database)
    try:
        await upgrade_schema(connection, Settings(backend="postgresql"))
        yield connection
    finally:
        await connection.close()
