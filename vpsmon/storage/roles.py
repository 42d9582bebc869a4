"""Login roles for the servers, in the group roles the migrations create."""

from __future__ import annotations

from vpsmon.storage.types import Connection


async def set_login_role(conn: Connection, role: str, password: str, group: str) -> None:
    """Create ``role`` (or reset its password) as a login in ``group``; run as an admin.

    Names and the password are quoted by the server (``format('%I', '%L')``), so
    none of them can break out of the statement.
    """
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    statement: str = await conn.fetchval(
        f"SELECT format('{verb} ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", role, password
    )
    await conn.execute(statement)
    grant: str = await conn.fetchval(
        "SELECT format('GRANT %I TO %I', $1::text, $2::text)", group, role
    )
    await conn.execute(grant)
