"""Migration 0011 on a registry that the code before it wrote: versions numbered per
VPS, the owners that users' removal emptied recorded as events, the registry tracked,
and the log alone rebuilding the live tables."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from command_side.vps_commands import rename_vps
from projections.registry_rebuild import SHADOW_REGISTRY, build_shadow_registry
from projections.vps_registry import LIVE_REGISTRY, RegistryTables
from tests.databases import StorageServer
from vpsmon.storage.migrations import migrate, migrations_dir

EVENT_VERSIONS = 11


def before_event_versions(directory: Path) -> Path:
    """A copy of the migrations that came before 0011 (same bytes, same checksums)."""
    directory.mkdir()
    for path in migrations_dir().glob("*.sql"):
        if int(path.name[:4]) < EVENT_VERSIONS:
            shutil.copy(path, directory / path.name)
    return directory


class OldRegistry:
    """Writes events and projections as vpsmon did before 0011, each event in its
    own transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def append(self, vps_id: int, event_type: str, payload: dict[str, Any]) -> datetime:
        occurred_at: datetime = await self.conn.fetchval(
            "INSERT INTO vps_events (vps_id, event_type, payload) VALUES ($1, $2, $3::jsonb)"
            " RETURNING occurred_at",
            vps_id,
            event_type,
            json.dumps(payload),
        )
        return occurred_at

    async def register(self, name: str, token: int, **owner: int | None) -> int:
        async with self.conn.transaction():
            vps_id: int = await self.conn.fetchval("SELECT nextval('vps_id_seq')")
            payload = {"name": name, "token_sha256": bytes([token] * 32).hex(), **owner}
            at = await self.append(vps_id, "registered", payload)
            await self.conn.execute(
                "INSERT INTO vps (id, name, created_at, updated_at, owner_id)"
                " VALUES ($1, $2, $3, $3, $4)",
                vps_id,
                name,
                at,
                owner.get("owner_id"),
            )
            await self.conn.execute(
                "INSERT INTO agent_tokens (token_sha256, vps_id, created_at) VALUES ($1, $2, $3)",
                bytes([token] * 32),
                vps_id,
                at,
            )
        return vps_id

    async def rotate(self, vps_id: int, token: int | None) -> None:
        async with self.conn.transaction():
            digest = None if token is None else bytes([token] * 32)
            at = await self.append(
                vps_id, "token_rotated", {"token_sha256": digest.hex() if digest else None}
            )
            await self.conn.execute(
                "UPDATE agent_tokens SET revoked_at = $2 WHERE vps_id = $1 AND revoked_at IS NULL",
                vps_id,
                at,
            )
            if digest is not None:
                await self.conn.execute(
                    "INSERT INTO agent_tokens (token_sha256, vps_id, created_at)"
                    " VALUES ($1, $2, $3)",
                    digest,
                    vps_id,
                    at,
                )

    async def rename(self, vps_id: int, name: str) -> None:
        async with self.conn.transaction():
            at = await self.append(vps_id, "renamed", {"name": name})
            await self.conn.execute(
                "UPDATE vps SET name = $2, updated_at = $3 WHERE id = $1", vps_id, name, at
            )

    async def configure(self, vps_id: int, collect_interval_seconds: int) -> None:
        async with self.conn.transaction():
            payload = {
                "collect_interval_seconds": collect_interval_seconds,
                "upload_interval_seconds": None,
                "upload_batch_max_size": None,
            }
            await self.append(vps_id, "agent_config_changed", payload)
            await self.conn.execute(
                "INSERT INTO vps_agent_config (vps_id, collect_interval_seconds) VALUES ($1, $2)",
                vps_id,
                collect_interval_seconds,
            )

    async def decommission(self, vps_id: int) -> None:
        async with self.conn.transaction():
            await self.append(vps_id, "decommissioned", {})
            await self.conn.execute("DELETE FROM vps WHERE id = $1", vps_id)


async def registry_rows(
    conn: asyncpg.Connection, tables: RegistryTables
) -> list[list[tuple[object, ...]]]:
    return [
        [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")]
        for table in (tables.vps, tables.agent_tokens, tables.agent_config)
    ]


async def test_migration_upgrades_the_log_so_that_it_alone_rebuilds_the_registry(
    storage_server: StorageServer, fresh_database: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await migrate(conn, storage_server.backend, before_event_versions(tmp_path / "old"))
        alice, bob = [
            await conn.fetchval(
                "INSERT INTO users (username, password_hash) VALUES ($1, 'x') RETURNING id", name
            )
            for name in ("alice", "bob")
        ]
        old = OldRegistry(conn)
        legacy = await old.register("legacy", 1)  # before owners existed: no owner_id
        web = await old.register("web-1", 2, owner_id=alice)
        db = await old.register("db-1", 3, owner_id=bob)
        gone = await old.register("tmp-1", 4, owner_id=None)
        await old.rename(web, "frontend-1")
        await old.rotate(db, 5)
        await old.rotate(legacy, None)
        await old.configure(web, 10)
        await old.decommission(gone)
        await old.rotate(web, 6)
        # Removing bob emptied db-1's owner without an event (ON DELETE SET NULL).
        await conn.execute("DELETE FROM users WHERE id = $1", bob)
        before = await registry_rows(conn, LIVE_REGISTRY)

        report = await migrate(conn, storage_server.backend)

        assert report.applied[0].version == EVENT_VERSIONS
        events = await conn.fetch(
            "SELECT event_id, vps_id, version, event_type, payload FROM vps_events"
            " ORDER BY event_id"
        )
        by_vps: dict[int, list[tuple[int, str]]] = {}
        for e in events:
            by_vps.setdefault(e["vps_id"], []).append((e["version"], e["event_type"]))
        assert by_vps == {
            legacy: [(1, "registered"), (2, "token_rotated")],
            web: [
                (1, "registered"),
                (2, "renamed"),
                (3, "agent_config_changed"),
                (4, "token_rotated"),
            ],
            db: [(1, "registered"), (2, "token_rotated"), (3, "owner_changed")],
            gone: [(1, "registered"), (2, "decommissioned")],
        }
        assert json.loads(events[-1]["payload"]) == {"owner_id": None}
        assert (
            await conn.fetchval(
                "SELECT last_event_id FROM projection_tracking WHERE projection = 'vps_registry'"
            )
            == events[-1]["event_id"]
        )
        # Only db-1's updated_at moved: its owner change is recorded as of the migration.
        after = await registry_rows(conn, LIVE_REGISTRY)
        changed_at = await conn.fetchval(
            "SELECT occurred_at FROM vps_events WHERE event_type = 'owner_changed'"
        )
        expected_vps = [r if r[0] != db else (*r[:3], changed_at, None) for r in before[0]]
        assert after == [expected_vps, *before[1:]]

        async with conn.transaction():
            await build_shadow_registry(conn)
            assert await registry_rows(conn, SHADOW_REGISTRY) == after

        # From now on commands append the next version, and an owner stays until
        # an event gives their VPSes up.
        await rename_vps(conn, web, "frontend-2")
        newest = await conn.fetchval("SELECT max(version) FROM vps_events WHERE vps_id = $1", web)
        assert newest == 5
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("DELETE FROM users WHERE id = $1", alice)
    finally:
        await conn.close()
