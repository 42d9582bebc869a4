"""Per-snapshot validation of incoming batches.

Each invalid snapshot is rejected on its own with a reason; the valid rest of
the batch is stored. Limits come from the storage types: every byte count
must fit a PostgreSQL bigint. A VPS has one sample per timestamp: the first
is kept and its repeats are rejected, here within a batch and by the
database's unique index across batches (the ingest writer records those on
the batch's rows, so the ack reports them too).
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from proto.vpsmon.v1 import agent_pb2
from vpsmon.constants import FUTURE_TOLERANCE_S, PG_BIGINT_MAX
from vpsmon.errors import InvalidBatchError
from vpsmon.metrics import MetricRow

FUTURE_TOLERANCE_MS = FUTURE_TOLERANCE_S * 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


REPEATED_IN_BATCH = "timestamp repeated within the batch"
ALREADY_STORED = "timestamp already stored"


@dataclass
class ValidatedBatch:
    batch_id: uuid.UUID
    rows: list[MetricRow]
    invalid: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def ack_fields(self, refused: int = 0) -> tuple[int, str]:
        """(rejected, error) for the ack: the invalid snapshots, plus the
        ``refused`` ones whose (vps_id, time) the database already held."""
        reasons = Counter(self.reasons)
        if refused:
            reasons[ALREADY_STORED] += refused
        error = "; ".join(f"{reason} ({count})" for reason, count in sorted(reasons.items()))
        return self.invalid + refused, error


def parse_batch_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidBatchError(f"batch_id {text[:64]!r} is not a UUID") from None


def _row_or_problem(
    snapshot: agent_pb2.PerformanceSnapshot, vps_id: int, now_ms: int, oldest_ms: int
) -> MetricRow | str:
    """The row for a valid snapshot, else the reason it is rejected.

    This runs for every snapshot ingested, so each field is read once.
    """
    cpu = snapshot.cpu_overall_usage_percent
    if not 0.0 <= cpu <= 100.0:
        return (
            "cpu_overall_usage_percent is not finite"
            if not math.isfinite(cpu)
            else "cpu_overall_usage_percent outside 0..100"
        )
    timestamp = snapshot.timestamp_unix_ms
    if timestamp > now_ms + FUTURE_TOLERANCE_MS:
        return f"timestamp more than {FUTURE_TOLERANCE_S // 60} minutes in the future"
    if timestamp < oldest_ms:
        return "timestamp older than raw retention"
    used = snapshot.memory_usage_bytes
    total = snapshot.memory_total_bytes
    read = snapshot.disk_total_io_read_bytes_per_sec
    write = snapshot.disk_total_io_write_bytes_per_sec
    if (
        used > PG_BIGINT_MAX
        or total > PG_BIGINT_MAX
        or read > PG_BIGINT_MAX
        or write > PG_BIGINT_MAX
    ):
        return "value out of range"
    if total == 0:
        return "memory_total_bytes is 0"
    if used > total:
        return "memory_usage_bytes exceeds memory_total_bytes"
    rx = tx = 0
    for interface in snapshot.network_interfaces:
        rx += interface.rx_bytes_per_sec
        tx += interface.tx_bytes_per_sec
    if rx > PG_BIGINT_MAX or tx > PG_BIGINT_MAX:
        return "network rate out of range"
    return (
        _EPOCH + timedelta(milliseconds=timestamp),
        vps_id,
        cpu,
        used,
        total,
        read,
        write,
        rx,
        tx,
    )


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
    rows = result.rows
    newest = -1
    seen: set[datetime] | None = None  # only once the timestamps stop rising
    for snapshot in batch.snapshots:
        outcome = _row_or_problem(snapshot, vps_id, now_ms, oldest_ms)
        if isinstance(outcome, str):
            result.invalid += 1
            result.reasons[outcome] += 1
            continue
        timestamp = snapshot.timestamp_unix_ms
        if seen is None:
            if timestamp > newest:  # an agent's own order: nothing to look up
                newest = timestamp
                rows.append(outcome)
                continue
            seen = {row[0] for row in rows}
        if outcome[0] in seen:
            result.invalid += 1
            result.reasons[REPEATED_IN_BATCH] += 1
        else:
            seen.add(outcome[0])
            rows.append(outcome)
    return result
