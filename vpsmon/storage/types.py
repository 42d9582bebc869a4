"""Type aliases for what database helpers accept."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A single connection, bare or borrowed from a pool: needed for transactions.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
# Anything that runs one statement.
Queryable: TypeAlias = "Connection | asyncpg.Pool[asyncpg.Record]"


def rows_affected(status: str) -> int:
    """The row count of a command status such as ``DELETE 42`` or ``INSERT 0 7``."""
    return int(status.rsplit(" ", 1)[-1])
