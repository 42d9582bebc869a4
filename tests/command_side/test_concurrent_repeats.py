"""Two command sides' ingest writers racing the same timestamps of one VPS under
different batch ids: the database stores each (vps_id, time) once and every
batch's accepted count is exactly what it stored."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from command_side.ingest import IngestWriter, PendingBatch
from command_side.vps_commands import register_vps
from vpsmon.metrics import MetricRow

BATCHES = 40
BATCH_ROWS = 50


def rows(vps_id: int, start: datetime, count: int, cpu: float) -> list[MetricRow]:
    return [(start + timedelta(seconds=i), vps_id, cpu, 1, 2, 3, 4, 5, 6) for i in range(count)]


async def test_two_writers_racing_the_same_timestamps_store_each_once(
    migrated_database: str,
) -> None:
    conn = await asyncpg.connect(migrated_database)
    vps_id = (await register_vps(conn, "web-1")).vps_id
    pools = [await asyncpg.create_pool(migrated_database, min_size=1, max_size=2) for _ in range(2)]
    writers = [IngestWriter(pool, linger_seconds=0.005) for pool in pools]
    for writer in writers:
        writer.start()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    # Side 0 gets windows 0, 1, 2, ...; side 1 the same windows shifted by half
    # of one, so most rows race a row of the other side, some race none.
    batches = [
        [
            PendingBatch(
                vps_id,
                uuid.uuid4(),
                rows(
                    vps_id, start + timedelta(seconds=n * BATCH_ROWS + side * 25), BATCH_ROWS, side
                ),
                0,
            )
            for n in range(BATCHES)
        ]
        for side in range(2)
    ]
    try:
        results = await asyncio.gather(
            *(writers[side].append(batches[side][n]) for n in range(BATCHES) for side in range(2))
        )
        distinct = await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT vps_id, time FROM performance_metrics) d"
        )
        total = await conn.fetchval("SELECT count(*) FROM performance_metrics")
        ledger = await conn.fetchrow(
            "SELECT sum(accepted) AS accepted, sum(rejected) AS rejected FROM ingested_batches"
        )
        latest = await conn.fetchval("SELECT time FROM vps_latest WHERE vps_id = $1", vps_id)
    finally:
        for writer in writers:
            await writer.close()
        for pool in pools:
            await pool.close()
        await conn.close()

    sent = 2 * BATCHES * BATCH_ROWS
    unique = BATCHES * BATCH_ROWS + 25
    assert total == distinct == unique
    assert not any(result.duplicate for result in results)
    assert sum(result.accepted for result in results) == unique
    assert sum(result.refused for result in results) == sent - unique
    assert ledger is not None
    assert (ledger["accepted"], ledger["rejected"]) == (unique, sent - unique)
    assert latest == start + timedelta(seconds=(BATCHES - 1) * BATCH_ROWS + 25 + BATCH_ROWS - 1)
