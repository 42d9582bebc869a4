"""Quarantined ``*.corrupt`` spool files are bounded by count and size and expire by age."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.spool import CORRUPT_MAX_AGE_S, CORRUPT_MAX_FILES, CORRUPT_SUFFIX, SnapshotSpool
from tests.agent.test_spool import batch_files, make_batch


def corrupt_all(spool: SnapshotSpool, count: int, size: int = 16) -> None:
    """Spool ``count`` batches, damage every file, and read them (which quarantines them)."""
    for _ in range(count):
        spool.add(make_batch())
    for path in batch_files(spool.directory):
        path.write_bytes(b"\x00" * size)
    assert spool.pending() == []


def test_only_the_newest_corrupt_files_are_kept(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path)
    corrupt_all(spool, CORRUPT_MAX_FILES + 5)
    assert spool.stats.spool_corrupt == CORRUPT_MAX_FILES + 5
    assert len(list(tmp_path.glob("*" + CORRUPT_SUFFIX))) == CORRUPT_MAX_FILES


def test_corrupt_files_are_bounded_by_size(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path, corrupt_max_bytes=1000)
    corrupt_all(spool, 5, size=300)
    kept = list(tmp_path.glob("*" + CORRUPT_SUFFIX))
    assert len(kept) == 3
    assert sum(p.stat().st_size for p in kept) <= 1000


def test_old_corrupt_files_are_removed_at_start(tmp_path: Path) -> None:
    old, recent = tmp_path / f"1-a.batch{CORRUPT_SUFFIX}", tmp_path / f"2-b.batch{CORRUPT_SUFFIX}"
    for path in (old, recent):
        path.write_bytes(b"junk")
    week_ago = time.time() - CORRUPT_MAX_AGE_S - 60
    os.utime(old, (week_ago, week_ago))
    SnapshotSpool(tmp_path)
    assert not old.exists()
    assert recent.exists()


def test_quarantine_age_counts_from_the_quarantine(tmp_path: Path) -> None:
    """A batch written long ago and found corrupt today is kept for a week from today."""
    spool = SnapshotSpool(tmp_path)
    spool.add(make_batch())
    [path] = batch_files(tmp_path)
    path.write_bytes(b"bad")
    long_ago = time.time() - CORRUPT_MAX_AGE_S - 60
    os.utime(path, (long_ago, long_ago))
    assert spool.pending() == []
    assert len(spool.corrupt_files()) == 1
