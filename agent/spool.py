"""Durable on-disk spool of snapshot batches.

A batch is written here (fsynced, renamed atomically into place) before it is
sent, and deleted only when the server acks it, so nothing collected is lost
across agent restarts, crashes and server outages. Files are named
``{seq:020d}-{batch_id}.batch`` so a directory listing sorts in creation order.

Each file carries a small header (magic, payload length, CRC-32) because a
truncated protobuf can still parse as a shorter, valid-looking message.

A file that fails the check is renamed ``*.corrupt`` for a human to look at,
but a disk that keeps corrupting must not fill up with them: they are kept
for at most a week, and only the newest 20 (at most 64 MiB together).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
import zlib
from collections import OrderedDict
from pathlib import Path

from agent.stats import AgentStats
from proto.vpsmon.v1 import agent_pb2
from vpsmon.errors import SpoolCorruptError

log = logging.getLogger(__name__)

SUFFIX = ".batch"
TEMP_SUFFIX = ".tmp"
CORRUPT_SUFFIX = ".corrupt"
_MAGIC = b"VPSB\x01"
_HEADER = struct.Struct(">5sII")  # magic+version, payload length, crc32
CORRUPT_MAX_FILES = 20
CORRUPT_MAX_BYTES = 64 << 20
CORRUPT_MAX_AGE_S = 7 * 86_400


def encode(batch: agent_pb2.PerformanceSnapshotBatch) -> bytes:
    payload = batch.SerializeToString()
    return _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode(data: bytes) -> agent_pb2.PerformanceSnapshotBatch:
    if len(data) < _HEADER.size:
        raise SpoolCorruptError(f"file too short ({len(data)} bytes)")
    magic, length, crc = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    if magic != _MAGIC:
        raise SpoolCorruptError("bad magic")
    if len(payload) != length:
        raise SpoolCorruptError(f"truncated: {len(payload)} of {length} payload bytes")
    if zlib.crc32(payload) != crc:
        raise SpoolCorruptError("checksum mismatch")
    batch = agent_pb2.PerformanceSnapshotBatch()
    batch.ParseFromString(payload)
    return batch


class SnapshotSpool:
    """Bounded FIFO of batches on disk, keyed by batch_id.

    Not thread-safe: the agent uses it from its event loop only.
    """

    def __init__(
        self,
        directory: Path,
        max_batches: int = 10_000,
        *,
        corrupt_max_files: int = CORRUPT_MAX_FILES,
        corrupt_max_bytes: int = CORRUPT_MAX_BYTES,
        corrupt_max_age_s: float = CORRUPT_MAX_AGE_S,
        stats: AgentStats | None = None,
    ) -> None:
        if max_batches < 1:
            raise ValueError("max_batches must be at least 1")
        self.directory = Path(directory)
        self.max_batches = max_batches
        self.corrupt_max_files = corrupt_max_files
        self.corrupt_max_bytes = corrupt_max_bytes
        self.corrupt_max_age_s = corrupt_max_age_s
        self.stats = stats if stats is not None else AgentStats()
        self._files: OrderedDict[str, Path] = OrderedDict()
        self._next_seq = 1
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._scan()

    def _scan(self) -> None:
        """Index the batches a previous run left behind, in creation order."""
        entries: list[tuple[int, str, Path]] = []
        for path in self.directory.iterdir():
            name = path.name
            if name.endswith(TEMP_SUFFIX):
                # An add() interrupted before its rename: never acknowledged as stored.
                log.info("spool: removing leftover temp file %s", path)
                path.unlink(missing_ok=True)
                continue
            if not name.endswith(SUFFIX):
                continue
            seq_text, sep, batch_id = name[: -len(SUFFIX)].partition("-")
            if not sep or not seq_text.isdigit() or not batch_id:
                self._quarantine(path, "unexpected file name")
                continue
            entries.append((int(seq_text), batch_id, path))
        entries.sort()
        for seq, batch_id, path in entries:
            self._files[batch_id] = path
            self._next_seq = max(self._next_seq, seq + 1)
        if entries:
            log.info("spool: %d unacknowledged batch(es) in %s", len(entries), self.directory)
        self.prune_corrupt()

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._files

    def ids(self) -> list[str]:
        """Batch ids, oldest first (cheap: reads no files)."""
        return list(self._files)

    def add(self, batch: agent_pb2.PerformanceSnapshotBatch) -> None:
        """Store ``batch`` durably; returns only once it would survive a crash."""
        batch_id = batch.batch_id
        if not batch_id or "/" in batch_id or batch_id in self._files:
            raise ValueError(f"invalid or duplicate batch_id {batch_id!r}")
        self._enforce_bound(room_for=1)
        seq = self._next_seq
        self._next_seq += 1
        final = self.directory / f"{seq:020d}-{batch_id}{SUFFIX}"
        temp = final.with_name(final.name + TEMP_SUFFIX)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = encode(batch)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(temp, final)
        self._fsync_directory()
        self._files[batch_id] = final
        log.debug("spool: added batch %s with %d snapshots", batch_id, len(batch.snapshots))

    def get(self, batch_id: str) -> agent_pb2.PerformanceSnapshotBatch | None:
        """Read one batch; None when it is gone or was corrupt (then set aside)."""
        path = self._files.get(batch_id)
        if path is None:
            return None
        try:
            batch = decode(path.read_bytes())
            if batch.batch_id != batch_id:
                raise SpoolCorruptError(f"file holds batch_id {batch.batch_id!r}")
        except FileNotFoundError:
            log.error("spool: batch file %s disappeared", path)
            del self._files[batch_id]
            return None
        except Exception as error:  # a damaged file must never stop the agent
            del self._files[batch_id]
            self._quarantine(path, str(error))
            return None
        return batch

    def pending(self) -> list[agent_pb2.PerformanceSnapshotBatch]:
        """All readable batches, oldest first."""
        batches = (self.get(batch_id) for batch_id in self.ids())
        return [batch for batch in batches if batch is not None]

    def remove(self, batch_id: str) -> bool:
        """Delete an acked batch; False if it was not (or no longer) spooled."""
        path = self._files.pop(batch_id, None)
        if path is None:
            return False
        # No directory fsync: a deletion lost to a crash only causes a re-send,
        # which the server answers with duplicate=true.
        path.unlink(missing_ok=True)
        return True

    def _enforce_bound(self, room_for: int) -> None:
        excess = len(self._files) + room_for - self.max_batches
        if excess <= 0:
            return
        for _ in range(excess):
            _, path = self._files.popitem(last=False)
            path.unlink(missing_ok=True)
        self.stats.spool_dropped += excess
        log.warning(
            "spool full (%d batches): dropped the %d oldest unsent batch(es), %d dropped in total",
            self.max_batches,
            excess,
            self.stats.spool_dropped,
        )

    def _quarantine(self, path: Path, reason: str) -> None:
        self.stats.spool_corrupt += 1
        target = path.with_name(path.name + CORRUPT_SUFFIX)
        try:
            os.replace(path, target)
            os.utime(target)  # its age counts from now, not from when it was written
            log.error("spool: corrupt batch file %s (%s); moved to %s", path, reason, target)
        except OSError as error:
            log.error("spool: corrupt batch file %s (%s); cannot move it: %s", path, reason, error)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        self.prune_corrupt()

    def corrupt_files(self) -> list[Path]:
        """The ``*.corrupt`` files kept for inspection, newest first."""
        found = []
        for path in self.directory.glob("*" + CORRUPT_SUFFIX):
            with contextlib.suppress(OSError):
                found.append((path.stat().st_mtime, path))
        return [path for _, path in sorted(found, reverse=True)]

    def prune_corrupt(self) -> int:
        """Delete ``*.corrupt`` files past the age, count or size bound; how many went."""
        oldest_kept = time.time() - self.corrupt_max_age_s
        kept, size, removed = 0, 0, 0
        for path in self.corrupt_files():
            try:
                info = path.stat()
                size += info.st_size
                if (
                    info.st_mtime >= oldest_kept
                    and kept < self.corrupt_max_files
                    and size <= self.corrupt_max_bytes
                ):
                    kept += 1
                    continue
                path.unlink()
            except OSError:
                continue
            removed += 1
        if removed:
            log.warning("spool: removed %d old corrupt file(s) from %s", removed, self.directory)
        return removed

    def _fsync_directory(self) -> None:
        """Make the rename itself durable (POSIX needs the directory synced)."""
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
