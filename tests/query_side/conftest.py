"""Fixtures the query-side tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest


@pytest.fixture
async def conn(embedded_migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a freshly migrated database on the embedded server."""
    connection = await asyncpg.connect(embedded_migrated_database)
    try:
        yield connection
    finally:
        await connection.close()
