"""The vps and agent_tokens projections are rebuilt from the event log without loss."""

from __future__ import annotations

import asyncpg

from command_side.vps_commands import (
    decommission_vps,
    register_vps,
    rotate_agent_token,
    vps_for_token,
)
from projections.registry_rebuild import rebuild_vps_registry
from vpsmon.settings import Settings
from vpsmon.storage.schema import upgrade_schema


async def snapshot(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], ...]:
    return (
        await conn.fetch("SELECT * FROM vps ORDER BY id"),
        await conn.fetch("SELECT * FROM agent_tokens ORDER BY token_sha256"),
    )


async def test_rebuild_replays_to_the_same_tables_and_keeps_measurements(
    embedded_database: str,
) -> None:
    conn = await asyncpg.connect(embedded_database)
    try:
        await upgrade_schema(conn, Settings(backend="postgresql"))
        kept = await register_vps(conn, "kept")
        rotated = await rotate_agent_token(conn, kept.vps_id)
        gone = await register_vps(conn, "gone")
        await decommission_vps(conn, gone.vps_id)
        await conn.execute(
            "INSERT INTO performance_metrics VALUES (now(), $1, 1, 1, 2, 3, 4, 5, 6)", kept.vps_id
        )
        before = await snapshot(conn)

        replayed = await rebuild_vps_registry(conn)

        assert replayed == 4
        assert await snapshot(conn) == before
        assert await conn.fetchval("SELECT count(*) FROM performance_metrics") == 1
        assert await vps_for_token(conn, kept.token) is None
        assert await vps_for_token(conn, rotated.token) == kept.vps_id
        assert await vps_for_token(conn, gone.token) is None
    finally:
        await conn.close()
