"""Grouping snapshots into PerformanceSnapshotBatch messages.

Pure logic driven by the caller's monotonic clock, so it is deterministic
under test. A batch closes when it holds ``batch_max_size`` snapshots or when
``upload_interval`` has passed since its first snapshot; the server rejects
oversized batches whole, so the size limit is never exceeded.
"""

from __future__ import annotations

import logging
import uuid

from proto.vpsmon.v1 import agent_pb2
from vpsmon import constants

log = logging.getLogger(__name__)

# Ticks arrive a hair early or late; treat "almost due" as due so a 1 s upload
# interval with a 1 s collect interval gives one snapshot per batch, not two.
_DUE_SLACK_S = 0.005


class Batcher:
    """Holds the live collect/upload settings and the batch being filled."""

    def __init__(
        self,
        *,
        collect_interval_seconds: int = 1,
        upload_interval_seconds: int = 1,
        batch_max_size: int = 60,
    ) -> None:
        if min(collect_interval_seconds, upload_interval_seconds, batch_max_size) < 1:
            raise ValueError("intervals and batch size must be at least 1")
        self.collect_interval_seconds = collect_interval_seconds
        self.upload_interval_seconds = upload_interval_seconds
        self.batch_max_size = batch_max_size
        self._current: agent_pb2.PerformanceSnapshotBatch | None = None
        self._opened_at = 0.0

    @property
    def pending_count(self) -> int:
        """Snapshots in the open (not yet closed) batch."""
        return 0 if self._current is None else len(self._current.snapshots)

    def deadline(self) -> float | None:
        """Monotonic time at which the open batch is due, or None if none is open."""
        if self._current is None:
            return None
        return self._opened_at + self.upload_interval_seconds

    def add(
        self, snapshot: agent_pb2.PerformanceSnapshot, now: float
    ) -> list[agent_pb2.PerformanceSnapshotBatch]:
        """Append a snapshot taken at monotonic ``now``; returns batches it closed."""
        closed = self.poll(now)
        if self._current is None:
            self._current = agent_pb2.PerformanceSnapshotBatch(batch_id=str(uuid.uuid4()))
            self._opened_at = now
        self._current.snapshots.append(snapshot)
        if len(self._current.snapshots) >= self.batch_max_size:
            closed.extend(self._close())
        return closed

    def poll(self, now: float) -> list[agent_pb2.PerformanceSnapshotBatch]:
        """Close the open batch if it is due (by time, or by a reduced size limit)."""
        current = self._current
        if current is None:
            return []
        due = self._opened_at + self.upload_interval_seconds - _DUE_SLACK_S
        if now >= due or len(current.snapshots) >= self.batch_max_size:
            return self._close()
        return []

    def flush(self) -> list[agent_pb2.PerformanceSnapshotBatch]:
        """Close the open batch regardless of its age (shutdown)."""
        return self._close()

    def _close(self) -> list[agent_pb2.PerformanceSnapshotBatch]:
        """Close the open batch, split to the size limit (it may have shrunk live)."""
        current, self._current = self._current, None
        if current is None or not current.snapshots:
            return []
        size = self.batch_max_size
        if len(current.snapshots) <= size:
            return [current]
        snapshots = list(current.snapshots)
        batches = [agent_pb2.PerformanceSnapshotBatch(batch_id=current.batch_id)]
        batches[0].snapshots.extend(snapshots[:size])
        for start in range(size, len(snapshots), size):
            batch = agent_pb2.PerformanceSnapshotBatch(batch_id=str(uuid.uuid4()))
            batch.snapshots.extend(snapshots[start : start + size])
            batches.append(batch)
        return batches

    def apply_config(self, config: agent_pb2.AgentConfig) -> bool:
        """Apply a server AgentConfig live (0 = keep); True if anything changed.

        Values outside vpsmon/constants.py's bounds are clamped into them: a
        misconfigured or hostile server must not make the agent sample a
        million times a second or hold a day of snapshots in memory.
        """
        changes: list[str] = []
        for attr, value, low, high in (
            (
                "collect_interval_seconds",
                config.metrics_collect_interval_seconds,
                constants.COLLECT_INTERVAL_MIN_S,
                constants.COLLECT_INTERVAL_MAX_S,
            ),
            (
                "upload_interval_seconds",
                config.metrics_upload_interval_seconds,
                constants.UPLOAD_INTERVAL_MIN_S,
                constants.UPLOAD_INTERVAL_MAX_S,
            ),
            (
                "batch_max_size",
                config.metrics_upload_batch_max_size,
                constants.BATCH_SIZE_MIN,
                constants.BATCH_SIZE_MAX,
            ),
        ):
            if value and not low <= value <= high:
                log.warning("server sent %s = %d; clamped to %d..%d", attr, value, low, high)
                value = min(max(value, low), high)
            if value and value != getattr(self, attr):
                changes.append(f"{attr} {getattr(self, attr)} -> {value}")
                setattr(self, attr, value)
        if changes:
            log.info("agent config updated: %s", ", ".join(changes))
        return bool(changes)
