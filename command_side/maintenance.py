"""One maintenance runner per cluster, elected by a PostgreSQL advisory lock.

Each command side, and `vpsmon maintain` for operators who split roles, runs
a :class:`MaintenanceRunner`. It opens a dedicated connection and takes a
session-level advisory lock on it: the process holding the lock is the
leader and runs every job, on that same connection, so no job ever runs
without the lock. The others wait in ``pg_advisory_lock`` until the leader's
session ends (it stops, crashes or loses its connection) and one of them
takes over. A leader that loses its connection loses the lock with it,
reconnects and queues again.

Jobs are small: a name, an interval and a coroutine function of the
connection (rollup refresh and retention today; alert evaluation and the
notification outbox later). Every run is recorded in ``maintenance_runs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from vpsmon.constants import DATABASE_CONNECT_TIMEOUT_S, MAINTENANCE_LEADER_LOCK_KEY
from vpsmon.errors import StorageError, StorageUnavailableError
from vpsmon.storage.errors import translated_errors

logger = logging.getLogger(__name__)

# How long a runner waits before it reconnects after losing its connection.
RECONNECT_DELAY_S = 1.0

JobFunction = Callable[[asyncpg.Connection], Awaitable[object]]


@dataclass(frozen=True)
class MaintenanceJob:
    """Background work the leader runs every ``interval``, first when it starts leading."""

    name: str
    interval: timedelta
    run: JobFunction


@dataclass(frozen=True)
class JobRun:
    """One recorded run of a job, as ``maintenance_runs`` holds it."""

    job: str
    runner: str
    started_at: datetime
    finished_at: datetime
    error: str | None


def new_runner_id() -> str:
    """Host, process and a random part: unique even across container restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class MaintenanceRunner:
    """Waits for leadership, then runs the jobs until stopped or the connection is lost."""

    def __init__(
        self,
        dsn: str,
        jobs: Sequence[MaintenanceJob],
        *,
        runner_id: str | None = None,
        reconnect_delay_s: float = RECONNECT_DELAY_S,
    ) -> None:
        names = [job.name for job in jobs]
        if not names:
            raise ValueError("a maintenance runner needs at least one job")
        if len(set(names)) != len(names):
            raise ValueError(f"maintenance job names must be unique: {names}")
        self.dsn = dsn
        self.jobs = tuple(jobs)
        self.runner_id = runner_id or new_runner_id()
        self.reconnect_delay_s = reconnect_delay_s
        self.leading = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Lead or wait to lead until ``stop``; never ends on a database failure."""
        while not stop.is_set():
            try:
                with translated_errors():
                    await self._serve_one_session(stop)
            except StorageError as error:
                logger.warning(
                    "maintenance runner %s lost its database session (%s); reconnecting",
                    self.runner_id,
                    error,
                )
            except Exception:
                logger.exception("maintenance runner %s failed; restarting it", self.runner_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.reconnect_delay_s)

    async def _serve_one_session(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(
            self.dsn,
            timeout=DATABASE_CONNECT_TIMEOUT_S,
            server_settings={"application_name": f"vpsmon maintenance {self.runner_id}"},
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        try:
            lock = conn.execute("SELECT pg_advisory_lock($1)", MAINTENANCE_LEADER_LOCK_KEY)
            if not await _until(lock, stop):
                return
            self.leading.set()
            logger.info("maintenance runner %s leads the cluster's background jobs", self.runner_id)
            await self._run_jobs(conn, stop, lost)
        finally:
            # Ending the session releases the lock. A leader says goodbye; a
            # runner still waiting for the lock, or a dead session, just goes.
            if self.leading.is_set() and not conn.is_closed():
                with contextlib.suppress(StorageError), translated_errors():
                    await asyncio.wait_for(conn.close(), 5)
            conn.terminate()
            self.leading.clear()

    async def _run_jobs(
        self, conn: asyncpg.Connection, stop: asyncio.Event, lost: asyncio.Event
    ) -> None:
        due = {job.name: time.monotonic() for job in self.jobs}
        while True:
            job = min(self.jobs, key=lambda j: due[j.name])
            wait = due[job.name] - time.monotonic()
            if wait > 0 and not await _until(asyncio.sleep(wait), stop, lost):
                if lost.is_set():
                    raise StorageUnavailableError("the leader's connection closed")
                return
            if stop.is_set():
                return
            await self._run_job(conn, job)
            due[job.name] = time.monotonic() + job.interval.total_seconds()

    async def _run_job(self, conn: asyncpg.Connection, job: MaintenanceJob) -> None:
        started: datetime = await conn.fetchval("SELECT clock_timestamp()")
        error = None
        try:
            await job.run(conn)
        except Exception as failure:
            if conn.is_closed():
                raise
            logger.exception("maintenance job %s failed; next try in %s", job.name, job.interval)
            error = f"{type(failure).__name__}: {failure}"
        await conn.execute(
            "INSERT INTO maintenance_runs (job, runner, started_at, finished_at, error)"
            " VALUES ($1, $2, $3, clock_timestamp(), $4)",
            job.name,
            self.runner_id,
            started,
            error,
        )


async def _until(work: Awaitable[object], *events: asyncio.Event) -> bool:
    """Await ``work`` unless one of ``events`` is set first: True if it ended.

    Unfinished work is cancelled, also when the caller itself is cancelled.
    """
    task = asyncio.ensure_future(work)
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    finished = False
    try:
        await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED)
        finished = task.done()
    finally:
        for waiter in waiters:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StorageError), translated_errors():
                await task
    if finished:
        task.result()  # the work's own error, if it failed
    return finished


async def last_runs(conn: asyncpg.Connection) -> dict[str, JobRun]:
    """The latest recorded run of each job (for operators and the self-metrics)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (job) job, runner, started_at, finished_at, error"
        " FROM maintenance_runs ORDER BY job, started_at DESC"
    )
    return {row["job"]: JobRun(**dict(row.items())) for row in rows}
