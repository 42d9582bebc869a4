"""A generated measurement history and the rollups computed from it independently in Python."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vpsmon.metrics import MetricRow as Row


def sample(rng: random.Random, vps_id: int, moment: datetime) -> Row:
    total = 1 << (31 + vps_id % 4)
    return (
        moment,
        vps_id,
        rng.uniform(0.0, 100.0),
        rng.randrange(total // 8, total),
        total,
        rng.randrange(0, 500_000_000),
        rng.randrange(0, 500_000_000),
        rng.randrange(0, 1_250_000_000),
        rng.randrange(0, 1_250_000_000),
    )


def one_second_samples(
    rng: random.Random,
    vps_id: int,
    start: datetime,
    end: datetime,
    gaps: Iterable[tuple[datetime, datetime]] = (),
) -> list[Row]:
    """A sample about every second in [start, end), with millisecond jitter, skipping the gaps."""
    gaps = list(gaps)
    rows = []
    moment = start
    while moment < end:
        if not any(g_start <= moment < g_end for g_start, g_end in gaps):
            jitter = timedelta(milliseconds=rng.choice((0, 0, rng.randrange(0, 1000))))
            if moment + jitter < end:
                rows.append(sample(rng, vps_id, moment + jitter))
        moment += timedelta(seconds=1)
    return rows


def floor_to(moment: datetime, width: timedelta) -> datetime:
    origin = datetime(2000, 1, 1, tzinfo=UTC)
    return origin + ((moment - origin) // width) * width


@dataclass
class Bucket:
    samples: int
    sums: list[float | int]
    mins: list[float | int]
    maxs: list[float | int]


def expected_rollup(rows: Iterable[Row], width: timedelta) -> dict[tuple[int, datetime], Bucket]:
    """Per (vps_id, bucket start): count, sum, min and max of every metric."""
    buckets: dict[tuple[int, datetime], Bucket] = {}
    for row in rows:
        key = (row[1], floor_to(row[0], width))
        values = list(row[2:])
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = Bucket(1, values[:], values[:], values[:])
            continue
        bucket.samples += 1
        for i, value in enumerate(values):
            bucket.sums[i] += value
            bucket.mins[i] = min(bucket.mins[i], value)
            bucket.maxs[i] = max(bucket.maxs[i], value)
    return buckets
