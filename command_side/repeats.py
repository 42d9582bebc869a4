"""Storing only the first sample of each (vps_id, time).

The unique index ``performance_metrics_vps_id_time_key`` makes the rule hold
across command sides. The ingest writer's fast path COPYs and never pays for
this module; only a group that hit the index is redone here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from vpsmon.errors import DuplicateKeyError
from vpsmon.metrics import METRIC_COLUMNS, MetricRow
from vpsmon.storage.types import Connection

UNIQUE_SAMPLE_INDEX = "performance_metrics_vps_id_time_key"

SampleKey = tuple[int, datetime]

# Rows in (vps_id, time) order, so that concurrent writers lock index entries
# in one order. The statement trigger of the plain-PostgreSQL rollups sees
# only the rows inserted.
_INSERT_NEW = f"""
INSERT INTO performance_metrics ({", ".join(METRIC_COLUMNS)})
SELECT * FROM unnest(
    $1::timestamptz[], $2::int[], $3::float8[], $4::int8[], $5::int8[],
    $6::int8[], $7::int8[], $8::int8[], $9::int8[]
)
ON CONFLICT DO NOTHING
RETURNING vps_id, time
"""


def is_repeated_sample(error: DuplicateKeyError) -> bool:
    """Whether the violated index is the one-sample-per-timestamp index (on
    TimescaleDB each chunk's copy of it carries the chunk's name in front)."""
    return (error.constraint or "").endswith(UNIQUE_SAMPLE_INDEX)


async def insert_new_rows(
    conn: Connection, batches: Sequence[Sequence[MetricRow]]
) -> set[SampleKey]:
    """Insert the first row of each (vps_id, time) not stored yet, taking the
    batches in queue order; the keys of the rows inserted."""
    seen: set[SampleKey] = set()
    candidates: list[MetricRow] = []
    for rows in batches:
        for row in rows:
            key = (row[1], row[0])
            if key not in seen:
                seen.add(key)
                candidates.append(row)
    if not candidates:
        return set()
    candidates.sort(key=lambda row: (row[1], row[0]))
    columns = list(zip(*candidates, strict=True))
    return {(r["vps_id"], r["time"]) for r in await conn.fetch(_INSERT_NEW, *columns)}


def take_stored(rows: Iterable[MetricRow], stored: set[SampleKey]) -> list[MetricRow]:
    """The rows of one batch that were stored; their keys leave ``stored``, so
    a later batch of the group with the same key is not credited with them."""
    kept = []
    for row in rows:
        key = (row[1], row[0])
        if key in stored:
            stored.discard(key)
            kept.append(row)
    return kept
