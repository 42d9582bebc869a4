"""Which VPSes a user may see: admins all, others their own."""

from __future__ import annotations

from query_side.accounts.users import User
from vpsmon.constants import PG_INTEGER_MAX
from vpsmon.storage.types import Queryable


def visible_vps_clause(
    user: User, *, table: str = "vps", first_param: int = 1
) -> tuple[str, list[object]]:
    """A WHERE condition on ``table`` (the `vps` table or an alias of it) and its arguments.

    Admins see every VPS, including those without owner; other users only
    their own. ``first_param`` is the number of the first placeholder to use,
    e.g. ``clause, args = visible_vps_clause(user, table="v", first_param=2)``
    then ``conn.fetch(f"... FROM vps v WHERE v.id = $1 AND {clause}", vps_id, *args)``.
    """
    if not table.isidentifier():
        raise ValueError(f"not a table name or alias: {table!r}")
    if user.is_admin:
        return "TRUE", []
    return f"{table}.owner_id = ${first_param}", [user.id]


async def can_see_vps(conn: Queryable, user: User, vps_id: int) -> bool:
    """Whether the VPS exists and ``user`` may see it (otherwise: a 404)."""
    if not -PG_INTEGER_MAX - 1 <= vps_id <= PG_INTEGER_MAX:
        return False  # not an id the `vps` table can hold
    clause, args = visible_vps_clause(user, first_param=2)
    visible: bool = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM vps WHERE vps.id = $1 AND {clause})", vps_id, *args
    )
    return visible


async def visible_vps_ids(conn: Queryable, user: User) -> list[int]:
    """The ids of every VPS ``user`` may see, ascending."""
    clause, args = visible_vps_clause(user)
    rows = await conn.fetch(f"SELECT id FROM vps WHERE {clause} ORDER BY id", *args)
    return [row["id"] for row in rows]
