"""The `vps_latest` projection: the newest snapshot per VPS.

It is updated in the append transaction, and the ids of the VPSes whose
values moved forward ride on a NOTIFY that PostgreSQL delivers at commit;
query-side caches then re-read those rows (the payload is only a hint).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vpsmon.constants import LATEST_CHANNEL
from vpsmon.metrics import METRIC_COLUMNS, MetricRow
from vpsmon.storage.notifications import encode_ids
from vpsmon.storage.types import Connection

_UPSERT = f"""
INSERT INTO vps_latest ({", ".join(METRIC_COLUMNS)})
SELECT * FROM unnest(
    $1::timestamptz[], $2::int[], $3::float8[], $4::int8[], $5::int8[],
    $6::int8[], $7::int8[], $8::int8[], $9::int8[]
)
ON CONFLICT (vps_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in METRIC_COLUMNS if c != "vps_id")}
WHERE vps_latest.time < EXCLUDED.time
RETURNING vps_id
"""


def newest_per_vps(rows: Iterable[MetricRow]) -> list[MetricRow]:
    """The newest row of each VPS, ordered by vps_id (a fixed lock order across writers)."""
    newest: dict[int, MetricRow] = {}
    for row in rows:
        current = newest.get(row[1])
        if current is None or row[0] > current[0]:
            newest[row[1]] = row
    return [newest[vps_id] for vps_id in sorted(newest)]


async def update_latest(conn: Connection, rows: Sequence[MetricRow]) -> list[int]:
    """Upsert the newest rows; announce the VPSes that moved forward (their ids)."""
    candidates = newest_per_vps(rows)
    if not candidates:
        return []
    columns = list(zip(*candidates, strict=True))
    changed: list[int] = [record[0] for record in await conn.fetch(_UPSERT, *columns)]
    await announce_latest(conn, changed)
    return changed


async def announce_latest(conn: Connection, vps_ids: Iterable[int]) -> None:
    """Queue the NOTIFY (sent at commit) that tells caches to re-read these VPSes."""
    for payload in encode_ids(vps_ids):
        await conn.execute("SELECT pg_notify($1, $2)", LATEST_CHANNEL, payload)
