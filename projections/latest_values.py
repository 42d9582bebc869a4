"""The `vps_latest` projection: the newest snapshot per VPS.

It is updated in the append transaction, and the new values ride on a NOTIFY
that PostgreSQL delivers at commit, so query-side caches follow without a
query per update.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from vpsmon.metrics import METRIC_COLUMNS, MetricRow
from vpsmon.storage.types import Connection

LATEST_CHANNEL = "vpsmon_latest"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
_MAX_PAYLOAD = 7000

_UPSERT = f"""
INSERT INTO vps_latest ({", ".join(METRIC_COLUMNS)})
SELECT * FROM unnest(
    $1::timestamptz[], $2::int[], $3::float8[], $4::int8[], $5::int8[],
    $6::int8[], $7::int8[], $8::int8[], $9::int8[]
)
ON CONFLICT (vps_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in METRIC_COLUMNS if c != "vps_id")}
WHERE vps_latest.time < EXCLUDED.time
RETURNING {", ".join(METRIC_COLUMNS)}
"""


def newest_per_vps(rows: Iterable[MetricRow]) -> list[MetricRow]:
    """The newest row of each VPS, ordered by vps_id (a fixed lock order across writers)."""
    newest: dict[int, MetricRow] = {}
    for row in rows:
        current = newest.get(row[1])
        if current is None or row[0] > current[0]:
            newest[row[1]] = row
    return [newest[vps_id] for vps_id in sorted(newest)]


async def update_latest(conn: Connection, rows: Sequence[MetricRow]) -> list[MetricRow]:
    """Upsert the newest rows and queue a NOTIFY for those that moved forward."""
    candidates = newest_per_vps(rows)
    if not candidates:
        return []
    columns = list(zip(*candidates, strict=True))
    changed = [tuple(record) for record in await conn.fetch(_UPSERT, *columns)]
    for payload in encode_notifications(changed):
        await conn.execute("SELECT pg_notify($1, $2)", LATEST_CHANNEL, payload)
    return changed


def encode_notifications(rows: Sequence[Sequence[Any]]) -> list[str]:
    """JSON arrays of rows, each payload under PostgreSQL's NOTIFY size limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = 2
    for row in rows:
        item = json.dumps([row[0].isoformat(), *row[1:]])
        if current and size + len(item) + 1 > _MAX_PAYLOAD:
            payloads.append("[" + ",".join(current) + "]")
            current, size = [], 2
        current.append(item)
        size += len(item) + 1
    if current:
        payloads.append("[" + ",".join(current) + "]")
    return payloads


def decode_notification(payload: str) -> list[dict[str, Any]]:
    """The rows of one NOTIFY payload, keyed by column name, times as datetimes."""
    decoded = []
    for item in json.loads(payload):
        record = dict(zip(METRIC_COLUMNS, item, strict=True))
        record["time"] = datetime.fromisoformat(record["time"])
        decoded.append(record)
    return decoded
