"""Batcher: closes batches by size and by age, and takes server config live."""

from __future__ import annotations

import uuid

from agent.batcher import Batcher
from proto.vpsmon.v1 import agent_pb2


def snap(i: int) -> agent_pb2.PerformanceSnapshot:
    return agent_pb2.PerformanceSnapshot(timestamp_unix_ms=1_700_000_000_000 + i * 1000)


def stamps(batch: agent_pb2.PerformanceSnapshotBatch) -> list[int]:
    return [(s.timestamp_unix_ms - 1_700_000_000_000) // 1000 for s in batch.snapshots]


def test_closes_when_full() -> None:
    batcher = Batcher(collect_interval_seconds=1, upload_interval_seconds=3600, batch_max_size=3)
    closed: list[agent_pb2.PerformanceSnapshotBatch] = []
    for i in range(7):
        closed += batcher.add(snap(i), now=100.0 + i)
    assert [stamps(b) for b in closed] == [[0, 1, 2], [3, 4, 5]]
    assert batcher.pending_count == 1
    rest = batcher.flush()
    assert [stamps(b) for b in rest] == [[6]]
    assert batcher.flush() == []
    assert batcher.deadline() is None


def test_closes_when_upload_interval_passed_since_first_snapshot() -> None:
    batcher = Batcher(collect_interval_seconds=1, upload_interval_seconds=5, batch_max_size=60)
    closed: list[agent_pb2.PerformanceSnapshotBatch] = []
    for i in range(5):
        closed += batcher.add(snap(i), now=10.0 + i)
    assert closed == []
    assert batcher.deadline() == 15.0
    assert batcher.poll(14.9) == []
    closed = batcher.add(snap(5), now=15.0)
    assert [stamps(b) for b in closed] == [[0, 1, 2, 3, 4]]
    assert batcher.deadline() == 20.0  # the new batch opened with snapshot 5
    assert [stamps(b) for b in batcher.poll(20.0)] == [[5]]


def test_equal_collect_and_upload_intervals_give_one_snapshot_per_batch() -> None:
    batcher = Batcher(collect_interval_seconds=1, upload_interval_seconds=1, batch_max_size=60)
    closed: list[agent_pb2.PerformanceSnapshotBatch] = []
    # Ticks arrive a hair early or late; that must not pair snapshots up.
    for i, jitter in enumerate([0.0, -0.001, 0.002, -0.002, 0.0]):
        closed += batcher.add(snap(i), now=i + jitter)
    assert [stamps(b) for b in closed] == [[0], [1], [2], [3]]


def test_each_batch_gets_a_fresh_uuid4() -> None:
    batcher = Batcher(batch_max_size=1)
    ids = [batcher.add(snap(i), now=float(i))[0].batch_id for i in range(20)]
    assert len(set(ids)) == 20
    assert all(uuid.UUID(batch_id).version == 4 for batch_id in ids)


def test_zero_fields_in_agent_config_leave_values_unchanged() -> None:
    batcher = Batcher(collect_interval_seconds=2, upload_interval_seconds=10, batch_max_size=30)
    assert batcher.apply_config(agent_pb2.AgentConfig()) is False
    assert batcher.apply_config(agent_pb2.AgentConfig(metrics_upload_batch_max_size=30)) is False
    assert batcher.apply_config(agent_pb2.AgentConfig(metrics_collect_interval_seconds=5)) is True
    assert (batcher.collect_interval_seconds, batcher.upload_interval_seconds) == (5, 10)
    assert batcher.batch_max_size == 30


def test_live_config_applies_to_the_open_batch() -> None:
    batcher = Batcher(collect_interval_seconds=1, upload_interval_seconds=60, batch_max_size=60)
    for i in range(7):
        assert batcher.add(snap(i), now=float(i)) == []
    assert batcher.deadline() == 60.0
    batcher.apply_config(agent_pb2.AgentConfig(metrics_upload_interval_seconds=10))
    assert batcher.deadline() == 10.0
    # A smaller maximum closes the open batch, split so none exceeds it.
    batcher.apply_config(agent_pb2.AgentConfig(metrics_upload_batch_max_size=3))
    closed = batcher.poll(7.0)
    assert [stamps(b) for b in closed] == [[0, 1, 2], [3, 4, 5], [6]]
    assert len({b.batch_id for b in closed}) == 3
    assert batcher.pending_count == 0
