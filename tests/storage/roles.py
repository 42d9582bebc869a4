"""Login roles in vpsmon's server groups, created for one test and dropped after it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from vpsmon.storage.dsn import with_login


@asynccontextmanager
async def login_role(owner_dsn: str, group: str | None) -> AsyncIterator[str]:
    """A DSN for a new login role with a password, a member of ``group`` (or of none)."""
    name = f"vpsmon_test_{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(16)
    member = f" IN ROLE {group}" if group else ""
    conn = await asyncpg.connect(owner_dsn)
    try:
        await conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'{member}")
        yield with_login(owner_dsn, name, password)
    finally:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
        )
        await conn.execute(f"DROP ROLE {name}")
        await conn.close()
