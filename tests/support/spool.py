"""Batches for the agent's spool, and the spool's files on disk."""

from __future__ import annotations

import uuid
from pathlib import Path

from agent.spool import SUFFIX
from proto.vpsmon.v1 import agent_pb2


def make_batch(
    n_snapshots: int = 2, batch_id: str | None = None
) -> agent_pb2.PerformanceSnapshotBatch:
    batch = agent_pb2.PerformanceSnapshotBatch(batch_id=batch_id or str(uuid.uuid4()))
    for i in range(n_snapshots):
        batch.snapshots.add(
            timestamp_unix_ms=1_700_000_000_000 + i * 1000,
            cpu_overall_usage_percent=12.5,
            memory_usage_bytes=1 << 30,
            memory_total_bytes=4 << 30,
        ).network_interfaces.add(interface_name="eth0", rx_bytes_per_sec=10, tx_bytes_per_sec=20)
    return batch


def batch_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))
