"""Rollup maintenance for whichever backend the database runs on."""

from __future__ import annotations

from projections import postgres_rollups, timescale_rollups
from vpsmon.settings import RetentionSettings
from vpsmon.storage.backend import Backend
from vpsmon.storage.types import Connection


async def refresh_rollups(
    conn: Connection,
    backend: Backend,
    retention: RetentionSettings,
    *,
    all_history: bool = False,
) -> None:
    """Materialize new buckets and re-materialize those that late rows touched.

    ``all_history`` also covers rows older than the refresh window (a bulk
    import); plain PostgreSQL always materializes everything below its
    watermark, so it only matters on TimescaleDB.
    """
    if backend is Backend.TIMESCALEDB:
        window = None if all_history else retention.refresh_window
        await timescale_rollups.refresh(conn, window)
    else:
        await postgres_rollups.refresh(conn)


async def enforce_retention(conn: Connection, backend: Backend) -> None:
    """Drop raw rows and rollup buckets older than their retention periods."""
    if backend is Backend.TIMESCALEDB:
        await timescale_rollups.enforce_retention(conn)
    else:
        await postgres_rollups.enforce_retention(conn)
