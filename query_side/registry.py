"""The read side of the VPS registry: names, owners and agent-config overrides.

`GET /api/vps` and `vpsmon vps list` both read it here; neither writes SQL of
its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from vpsmon.storage.types import Queryable


@dataclass(frozen=True)
class RegisteredVps:
    id: int
    name: str
    owner: str | None  # the owner's username; None: only admins see it
    created_at: datetime
    # `vpsmon vps config` overrides of the server's AgentConfig (None: the default).
    collect_interval_s: int | None
    upload_interval_s: int | None


async def list_registered_vps(
    conn: Queryable, ids: Sequence[int] | None = None
) -> list[RegisteredVps]:
    """Every registered VPS (or those of ``ids``), ascending by id."""
    rows = await conn.fetch(
        "SELECT v.id, v.name, u.username AS owner, v.created_at,"
        " c.collect_interval_seconds AS collect_interval_s,"
        " c.upload_interval_seconds AS upload_interval_s"
        " FROM vps v LEFT JOIN users u ON u.id = v.owner_id"
        " LEFT JOIN vps_agent_config c ON c.vps_id = v.id"
        " WHERE $1::int[] IS NULL OR v.id = ANY($1::int[]) ORDER BY v.id",
        None if ids is None else list(ids),
    )
    return [RegisteredVps(**dict(row)) for row in rows]
