"""SnapshotSpool: durable across instances, ordered, bounded, robust to damage."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from agent.spool import CORRUPT_SUFFIX, SUFFIX, TEMP_SUFFIX, SnapshotSpool
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


def test_batches_survive_a_new_instance_in_order(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path)
    batches = [make_batch(i + 1) for i in range(5)]
    for batch in batches:
        spool.add(batch)
    assert spool.pending() == batches

    reopened = SnapshotSpool(tmp_path)
    assert reopened.pending() == batches
    assert reopened.ids() == [b.batch_id for b in batches]
    # New batches sort after the ones a previous run left behind.
    later = make_batch()
    reopened.add(later)
    assert SnapshotSpool(tmp_path).ids()[-1] == later.batch_id


def test_remove_is_durable_and_idempotent(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path)
    first, second = make_batch(), make_batch()
    spool.add(first)
    spool.add(second)
    assert spool.remove(first.batch_id) is True
    assert spool.remove(first.batch_id) is False
    assert first.batch_id not in spool
    assert len(spool) == 1
    assert SnapshotSpool(tmp_path).pending() == [second]


def test_add_leaves_no_temp_files_and_rejects_duplicates(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path)
    batch = make_batch()
    spool.add(batch)
    assert [p.name.endswith(SUFFIX) for p in tmp_path.iterdir()] == [True]
    assert batch.batch_id in batch_files(tmp_path)[0].name
    with pytest.raises(ValueError, match="duplicate"):
        spool.add(batch)
    with pytest.raises(ValueError, match="invalid"):
        spool.add(agent_pb2.PerformanceSnapshotBatch())


def test_bound_drops_oldest_with_a_logged_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = SnapshotSpool(tmp_path, max_batches=3)
    batches = [make_batch() for _ in range(5)]
    with caplog.at_level(logging.WARNING, logger="agent.spool"):
        for batch in batches:
            spool.add(batch)
    assert spool.ids() == [b.batch_id for b in batches[2:]]
    assert spool.stats.spool_dropped == 2
    assert len(batch_files(tmp_path)) == 3
    assert "dropped the 1 oldest" in caplog.text
    assert "2 dropped in total" in caplog.text

    # A smaller bound on restart trims the backlog at the next add.
    smaller = SnapshotSpool(tmp_path, max_batches=2)
    newest = make_batch()
    smaller.add(newest)
    assert smaller.ids() == [batches[4].batch_id, newest.batch_id]
    assert smaller.stats.spool_dropped == 2


def test_leftover_temp_files_are_deleted(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path)
    kept = make_batch()
    spool.add(kept)
    leftover = tmp_path / f"{99:020d}-{uuid.uuid4()}{SUFFIX}{TEMP_SUFFIX}"
    leftover.write_bytes(b"half a batch")
    assert SnapshotSpool(tmp_path).pending() == [kept]
    assert not leftover.exists()


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "garbage", "empty"])
def test_corrupt_file_is_set_aside_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    spool = SnapshotSpool(tmp_path)
    good_before, bad, good_after = make_batch(), make_batch(30), make_batch()
    for batch in (good_before, bad, good_after):
        spool.add(batch)
    path = batch_files(tmp_path)[1]
    data = path.read_bytes()
    damaged = {
        "truncate": data[: len(data) - 7],
        "bitflip": data[:-1] + bytes([data[-1] ^ 0x01]),
        "garbage": b"\x00not a batch at all",
        "empty": b"",
    }[damage]
    path.write_bytes(damaged)

    reopened = SnapshotSpool(tmp_path)
    with caplog.at_level(logging.ERROR, logger="agent.spool"):
        assert reopened.pending() == [good_before, good_after]
    assert "corrupt batch file" in caplog.text
    assert bad.batch_id not in reopened
    assert reopened.stats.spool_corrupt == 1
    assert path.with_name(path.name + CORRUPT_SUFFIX).exists()
    # The quarantined file is not picked up again.
    assert SnapshotSpool(tmp_path).ids() == [good_before.batch_id, good_after.batch_id]


def test_file_with_foreign_name_or_mismatched_id_is_set_aside(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path)
    batch = make_batch()
    spool.add(batch)
    (tmp_path / f"not-a-sequence{SUFFIX}").write_bytes(b"")
    # A valid batch stored under another batch_id's name is not trusted either.
    (tmp_path / f"{50:020d}-{uuid.uuid4()}{SUFFIX}").write_bytes(
        batch_files(tmp_path)[0].read_bytes()
    )
    reopened = SnapshotSpool(tmp_path)
    assert reopened.pending() == [batch]
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(CORRUPT_SUFFIX)]) == 2


def test_get_of_unknown_or_vanished_batch_is_none(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path)
    batch = make_batch()
    spool.add(batch)
    assert spool.get("nope") is None
    batch_files(tmp_path)[0].unlink()
    assert spool.get(batch.batch_id) is None
    assert len(spool) == 0
