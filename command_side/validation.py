"""Per-snapshot validation of incoming batches.

Each invalid snapshot is rejected on its own with a reason; the valid rest of
the batch is stored. Limits come from the storage types: every byte count
must fit a PostgreSQL bigint.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from proto.vpsmon.v1 import agent_pb2
from vpsmon.metrics import MetricRow

BIGINT_MAX = 2**63 - 1
FUTURE_TOLERANCE_MS = 5 * 60 * 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidBatchError(ValueError):
    """The whole batch is unusable (bad id, too many snapshots)."""


@dataclass
class ValidatedBatch:
    batch_id: uuid.UUID
    rows: list[MetricRow]
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def error(self) -> str:
        return "; ".join(f"{reason} ({count})" for reason, count in sorted(self.reasons.items()))


def parse_batch_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidBatchError(f"batch_id {text[:64]!r} is not a UUID") from None


def _snapshot_problem(
    snapshot: agent_pb2.PerformanceSnapshot, now_ms: int, oldest_ms: int
) -> str | None:
    cpu = snapshot.cpu_overall_usage_percent
    if not math.isfinite(cpu):
        return "cpu_overall_usage_percent is not finite"
    if not 0.0 <= cpu <= 100.0:
        return "cpu_overall_usage_percent outside 0..100"
    if snapshot.timestamp_unix_ms > now_ms + FUTURE_TOLERANCE_MS:
        return "timestamp more than 5 minutes in the future"
    if snapshot.timestamp_unix_ms < oldest_ms:
        return "timestamp older than raw retention"
    counters = (
        snapshot.memory_usage_bytes,
        snapshot.memory_total_bytes,
        snapshot.disk_total_io_read_bytes_per_sec,
        snapshot.disk_total_io_write_bytes_per_sec,
    )
    if any(value > BIGINT_MAX for value in counters):
        return "value out of range"
    if snapshot.memory_total_bytes == 0:
        return "memory_total_bytes is 0"
    if snapshot.memory_usage_bytes > snapshot.memory_total_bytes:
        return "memory_usage_bytes exceeds memory_total_bytes"
    interfaces = snapshot.network_interfaces
    if sum(i.rx_bytes_per_sec for i in interfaces) > BIGINT_MAX or (
        sum(i.tx_bytes_per_sec for i in interfaces) > BIGINT_MAX
    ):
        return "network rate out of range"
    return None


def validate_batch(
    batch: agent_pb2.PerformanceSnapshotBatch,
    vps_id: int,
    *,
    now_ms: int,
    oldest_ms: int,
    max_snapshots: int,
) -> ValidatedBatch:
    """Rows for the valid snapshots, with a count and reasons for the rest."""
    batch_id = parse_batch_id(batch.batch_id)
    if len(batch.snapshots) > max_snapshots:
        raise InvalidBatchError(
            f"batch of {len(batch.snapshots)} snapshots exceeds the maximum of {max_snapshots}"
        )
    result = ValidatedBatch(batch_id, [])
    for snapshot in batch.snapshots:
        problem = _snapshot_problem(snapshot, now_ms, oldest_ms)
        if problem is not None:
            result.rejected += 1
            result.reasons[problem] += 1
            continue
        interfaces = snapshot.network_interfaces
        result.rows.append(
            (
                _EPOCH + timedelta(milliseconds=snapshot.timestamp_unix_ms),
                vps_id,
                snapshot.cpu_overall_usage_percent,
                snapshot.memory_usage_bytes,
                snapshot.memory_total_bytes,
                snapshot.disk_total_io_read_bytes_per_sec,
                snapshot.disk_total_io_write_bytes_per_sec,
                sum(i.rx_bytes_per_sec for i in interfaces),
                sum(i.tx_bytes_per_sec for i in interfaces),
            )
        )
    return result
