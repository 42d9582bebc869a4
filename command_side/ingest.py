"""Append-only ingest with group commit.

Batches from every stream wait in one bounded queue; a single writer task
commits whatever is queued together, up to a row limit or a few
milliseconds after the first batch arrived. One transaction per group claims
the batch ids (a batch id already claimed is a duplicate and inserts
nothing), COPYs the rows, and updates the latest-values projection, whose
NOTIFY PostgreSQL delivers at commit. A caller's future resolves only after
that commit, so an ack never precedes durability.

A VPS has one sample per timestamp, enforced by a unique index so that it
holds across command sides. The fast path COPYs every row; a COPY that hits
the index (only when a repeat actually arrives) rolls the group back and
redoes it with INSERT ... ON CONFLICT DO NOTHING, which stores the first
sample of each (vps_id, time) and tells which rows it stored, so each
batch's accepted and rejected counts are exact (command_side/repeats.py).

The queue bound is the back-pressure: when it is full, stream handlers stop
reading and gRPC flow control slows the agents down.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from command_side.repeats import insert_new_rows, is_repeated_sample, take_stored
from projections.latest_values import update_latest
from vpsmon.errors import (
    DuplicateKeyError,
    MissingReferenceError,
    StorageError,
    StorageUnavailableError,
    UnknownVpsError,
)
from vpsmon.metrics import METRIC_COLUMNS, MetricRow
from vpsmon.self_metrics import SELF_METRICS
from vpsmon.storage.errors import translated_errors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppendResult:
    accepted: int
    duplicate: bool
    # Rows not stored because their (vps_id, time) already was.
    refused: int = 0


@dataclass
class PendingBatch:
    vps_id: int
    batch_id: uuid.UUID
    rows: list[MetricRow]
    rejected: int
    done: asyncio.Future[AppendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class IngestWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_queued_batches: int = 512,
        max_group_rows: int = 20_000,
        linger_seconds: float = 0.002,
        commit_timeout_seconds: float = 15.0,
    ) -> None:
        self._pool = pool
        self._queue: asyncio.Queue[PendingBatch] = asyncio.Queue(max_queued_batches)
        self._max_group_rows = max_group_rows
        self._linger = linger_seconds
        self._commit_timeout = commit_timeout_seconds
        self._task: asyncio.Task[None] | None = None
        self.committed_rows = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-writer")
        self._task.add_done_callback(_report_exit)

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def append(self, batch: PendingBatch) -> AppendResult:
        """Wait for room in the queue, then for the batch's commit.

        StorageUnavailableError: not committed, the agent must re-send it;
        UnknownVpsError: the VPS was removed; another StorageError: this batch failed.
        """
        with SELF_METRICS.pending_batches.track_inprogress():
            await self._queue.put(batch)
            return await batch.done

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            rows = len(group[0].rows)
            deadline = time.monotonic() + self._linger
            while rows < self._max_group_rows:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                group.append(item)
                rows += len(item.rows)
            try:
                await self._commit_group(group)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _commit_group(self, group: list[PendingBatch]) -> None:
        try:
            results = await self._commit(group)
        except StorageUnavailableError as error:
            logger.warning("database unavailable, %d batches not committed: %r", len(group), error)
            for batch in group:
                _fail(batch, error)
            return
        except StorageError as error:
            if len(group) == 1:
                logger.error(
                    "batch %s of VPS %s failed: %r", group[0].batch_id, group[0].vps_id, error
                )
                _fail(group[0], _batch_error(error))
                return
            # One bad batch (e.g. its VPS was just removed) must not sink the others.
            for batch in group:
                await self._commit_group([batch])
            return
        except Exception as error:
            # Whatever else goes wrong (a driver error on a dropped connection,
            # say), the writer must live on: the agents re-send these batches.
            logger.exception("group commit failed; %d batches not committed", len(group))
            for batch in group:
                _fail(batch, StorageUnavailableError(repr(error)))
            return
        for batch, result in zip(group, results, strict=True):
            if not batch.done.done():
                batch.done.set_result(result)

    async def _commit(self, group: list[PendingBatch]) -> list[AppendResult]:
        first: dict[tuple[int, uuid.UUID], PendingBatch] = {}
        for batch in group:
            first.setdefault((batch.vps_id, batch.batch_id), batch)
        keys = sorted(first)  # a fixed lock order across concurrent writers
        conn: PoolConnectionProxy[asyncpg.Record] | None = None
        with translated_errors():  # a timeout too: the outcome is unknown
            try:
                # Connecting and COPY on a connection the server dropped can both
                # wait far too long; the agents re-send and the batch ids sort it out.
                async with asyncio.timeout(self._commit_timeout):
                    conn = await self._pool.acquire()
                    results, rows = await self._commit_on(conn, group, first, keys)
            except TimeoutError:
                if conn is not None:
                    conn.terminate()
                raise
            finally:
                if conn is not None:
                    await self._pool.release(conn)
        self.committed_rows += rows
        SELF_METRICS.group_committed(rows, results)
        return results

    async def _commit_on(
        self,
        conn: PoolConnectionProxy[asyncpg.Record],
        group: list[PendingBatch],
        first: dict[tuple[int, uuid.UUID], PendingBatch],
        keys: list[tuple[int, uuid.UUID]],
    ) -> tuple[list[AppendResult], int]:
        try:
            with translated_errors():
                return await self._copy_group(conn, group, first, keys)
        except DuplicateKeyError as error:
            if not is_repeated_sample(error):
                raise
        # The group's transaction is rolled back: nothing of it is stored yet.
        return await self._insert_group(conn, group, first, keys)

    async def _copy_group(
        self,
        conn: PoolConnectionProxy[asyncpg.Record],
        group: list[PendingBatch],
        first: dict[tuple[int, uuid.UUID], PendingBatch],
        keys: list[tuple[int, uuid.UUID]],
    ) -> tuple[list[AppendResult], int]:
        """The fast path: every row of a fresh batch is stored."""
        async with conn.transaction():
            fresh = await _claim(conn, first, keys)
            results = []
            rows: list[MetricRow] = []
            for batch in group:
                if _take(fresh, batch):
                    rows.extend(batch.rows)
                    results.append(AppendResult(len(batch.rows), duplicate=False))
                else:
                    results.append(AppendResult(0, duplicate=True))
            if rows:
                await conn.copy_records_to_table(
                    "performance_metrics", records=rows, columns=METRIC_COLUMNS
                )
                await update_latest(conn, rows)
        return results, len(rows)

    async def _insert_group(
        self,
        conn: PoolConnectionProxy[asyncpg.Record],
        group: list[PendingBatch],
        first: dict[tuple[int, uuid.UUID], PendingBatch],
        keys: list[tuple[int, uuid.UUID]],
    ) -> tuple[list[AppendResult], int]:
        """The slow path: only rows whose (vps_id, time) is new are stored; the
        first in queue order wins, and each batch's ledger row says how many."""
        async with conn.transaction():
            fresh = await _claim(conn, first, keys)
            taken = [_take(fresh, batch) for batch in group]
            stored = await insert_new_rows(
                conn, [batch.rows for batch, take in zip(group, taken, strict=True) if take]
            )
            results = []
            rows: list[MetricRow] = []
            refusals: list[tuple[PendingBatch, int]] = []
            for batch, take in zip(group, taken, strict=True):
                if not take:
                    results.append(AppendResult(0, duplicate=True))
                    continue
                kept = take_stored(batch.rows, stored)
                refused = len(batch.rows) - len(kept)
                rows.extend(kept)
                results.append(AppendResult(len(kept), duplicate=False, refused=refused))
                if refused:
                    refusals.append((batch, refused))
            if refusals:
                await conn.execute(
                    "UPDATE ingested_batches b SET accepted = b.accepted - u.refused,"
                    " rejected = b.rejected + u.refused"
                    " FROM unnest($1::int[], $2::uuid[], $3::int[])"
                    " AS u (vps_id, batch_id, refused)"
                    " WHERE b.vps_id = u.vps_id AND b.batch_id = u.batch_id",
                    [batch.vps_id for batch, _ in refusals],
                    [batch.batch_id for batch, _ in refusals],
                    [refused for _, refused in refusals],
                )
            if rows:
                await update_latest(conn, rows)
        return results, len(rows)


async def _claim(
    conn: PoolConnectionProxy[asyncpg.Record],
    first: dict[tuple[int, uuid.UUID], PendingBatch],
    keys: list[tuple[int, uuid.UUID]],
) -> set[tuple[int, uuid.UUID]]:
    """Claim the group's batch ids in the ledger; the ones that were not claimed before."""
    claimed = await conn.fetch(
        "INSERT INTO ingested_batches (vps_id, batch_id, accepted, rejected)"
        " SELECT * FROM unnest($1::int[], $2::uuid[], $3::int[], $4::int[])"
        " ON CONFLICT DO NOTHING RETURNING vps_id, batch_id",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [len(first[k].rows) for k in keys],
        [first[k].rejected for k in keys],
    )
    return {(r["vps_id"], r["batch_id"]) for r in claimed}


def _take(fresh: set[tuple[int, uuid.UUID]], batch: PendingBatch) -> bool:
    """Whether this batch's rows go in; a second copy in the group is a duplicate."""
    key = (batch.vps_id, batch.batch_id)
    if key in fresh:
        fresh.discard(key)
        return True
    return False


def _report_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.critical("the ingest writer stopped", exc_info=task.exception())


def _batch_error(error: StorageError) -> StorageError | UnknownVpsError:
    """What one batch's failure means: its VPS is gone (a foreign key), or it failed."""
    if not isinstance(error, MissingReferenceError):
        return error
    removed = UnknownVpsError("this VPS has been removed")
    removed.__cause__ = error
    return removed


def _fail(batch: PendingBatch, error: BaseException) -> None:
    if not batch.done.done():
        batch.done.set_exception(error)
