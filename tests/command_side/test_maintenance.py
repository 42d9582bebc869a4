"""The maintenance runner: of several on one database exactly one works, another
takes over when the leader's session ends, and every run is recorded.
Observed through the database (maintenance_runs, pg_locks, the rollup
watermarks), on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import pytest

from command_side.maintenance import MaintenanceJob, MaintenanceRunner, last_runs
from command_side.maintenance_jobs import maintenance_jobs
from projections.refresh_lag import rollup_watermarks
from tests.support.rollups import Store
from tests.support.waiting import eventually
from vpsmon.constants import MAINTENANCE_LEADER_LOCK_KEY
from vpsmon.rollup_levels import LEVELS
from vpsmon.storage.backend import Backend

QUICK = timedelta(milliseconds=50)


def quick_jobs(store: Store) -> list[MaintenanceJob]:
    """The real jobs of the store's backend, due every 50 ms."""
    jobs = maintenance_jobs(store.backend, store.settings)
    return [dataclasses.replace(job, interval=QUICK) for job in jobs]


@asynccontextmanager
async def running(runner: MaintenanceRunner) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def leader_lock(conn: asyncpg.Connection, *, granted: bool) -> list[str]:
    """application_name of the sessions holding (or waiting for) the leader lock."""
    rows = await conn.fetch(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.objid = $1 AND l.granted = $2"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        MAINTENANCE_LEADER_LOCK_KEY,
        granted,
    )
    return [row["application_name"] for row in rows]


async def runs_by(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT runner, count(*) AS runs FROM maintenance_runs GROUP BY 1")
    return {row["runner"]: row["runs"] for row in rows}


async def test_of_two_runners_exactly_one_does_the_work(
    store: Store, migrated_database: str
) -> None:
    conn = store.conn
    first = MaintenanceRunner(migrated_database, quick_jobs(store), runner_id="first")
    second = MaintenanceRunner(migrated_database, quick_jobs(store), runner_id="second")
    async with running(first):

        async def first_leads() -> bool:
            return await leader_lock(conn, granted=True) == ["vpsmon maintenance first"]

        await eventually(first_leads, "the first runner leads")
        async with running(second):

            async def second_waits() -> bool:
                return await leader_lock(conn, granted=False) == ["vpsmon maintenance second"]

            await eventually(second_waits, "the second runner waits for the lock")
            before = (await runs_by(conn)).get("first", 0)

            async def many_runs() -> bool:
                return (await runs_by(conn)).get("first", 0) >= before + 3 * len(first.jobs)

            await eventually(many_runs, "the leader runs its jobs again and again")
            assert await leader_lock(conn, granted=False) == ["vpsmon maintenance second"]
            assert set(await runs_by(conn)) == {"first"}
    runs = await last_runs(conn)
    assert set(runs) == {job.name for job in first.jobs}
    assert all(run.error is None and run.runner == "first" for run in runs.values())
    if store.backend is Backend.POSTGRESQL:
        # The refresh job ran: every view has materialized buckets up to a watermark.
        assert "rollup-refresh" in runs
        watermarks = await rollup_watermarks(conn, store.backend)
        assert all(watermarks[level.name] is not None for level in LEVELS), watermarks


async def test_another_runner_takes_over_when_the_leader_loses_its_connection(
    store: Store, migrated_database: str
) -> None:
    conn = store.conn
    first = MaintenanceRunner(
        migrated_database, quick_jobs(store), runner_id="first", reconnect_delay_s=0.05
    )
    second = MaintenanceRunner(migrated_database, quick_jobs(store), runner_id="second")
    async with running(first), running(second):

        async def one_leads_one_waits() -> bool:
            leading = await leader_lock(conn, granted=True)
            return len(leading) == 1 and len(await leader_lock(conn, granted=False)) == 1

        await eventually(one_leads_one_waits, "one runner leads, the other waits")
        leader = (await leader_lock(conn, granted=True))[0].removeprefix("vpsmon maintenance ")
        follower = "second" if leader == "first" else "first"
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            f"vpsmon maintenance {leader}",
        )

        async def follower_works() -> bool:
            return (await runs_by(conn)).get(follower, 0) >= len(first.jobs)

        await eventually(follower_works, "the follower takes over and runs the jobs")
        assert await leader_lock(conn, granted=True) == [f"vpsmon maintenance {follower}"]

        async def old_leader_queues() -> bool:
            return await leader_lock(conn, granted=False) == [f"vpsmon maintenance {leader}"]

        await eventually(old_leader_queues, "the old leader reconnects and waits")


async def test_a_stopped_leader_hands_over_at_once(store: Store, migrated_database: str) -> None:
    conn = store.conn
    first = MaintenanceRunner(migrated_database, quick_jobs(store), runner_id="first")
    second = MaintenanceRunner(migrated_database, quick_jobs(store), runner_id="second")
    async with running(second):
        async with running(first):

            async def both_there() -> bool:
                sessions = [
                    *await leader_lock(conn, granted=True),
                    *await leader_lock(conn, granted=False),
                ]
                return len(sessions) == 2

            await eventually(both_there, "both runners are connected")
        # `first` is stopped now (it led or waited); `second` must be the leader.

        async def second_leads() -> bool:
            return await leader_lock(conn, granted=True) == ["vpsmon maintenance second"]

        await eventually(second_leads, "the remaining runner leads")


async def test_a_failing_job_is_recorded_and_the_others_go_on(
    store: Store, migrated_database: str
) -> None:
    async def broken(conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT * FROM no_such_table")

    async def fine(conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT 1")

    jobs = [MaintenanceJob("broken", QUICK, broken), MaintenanceJob("fine", QUICK, fine)]
    runner = MaintenanceRunner(migrated_database, jobs, runner_id="solo")
    async with running(runner):

        async def both_ran_twice() -> bool:
            rows = await store.conn.fetch(
                "SELECT job, count(*) AS runs FROM maintenance_runs GROUP BY job"
            )
            return len(rows) == 2 and all(row["runs"] >= 2 for row in rows)

        await eventually(both_ran_twice, "both jobs ran twice")
    runs = await last_runs(store.conn)
    assert runs["broken"].error is not None
    assert "UndefinedTableError" in runs["broken"].error
    assert runs["fine"].error is None


def test_jobs_must_be_there_and_named_uniquely() -> None:
    async def nothing(conn: asyncpg.Connection) -> None:
        return None

    job = MaintenanceJob("twice", QUICK, nothing)
    with pytest.raises(ValueError, match="unique"):
        MaintenanceRunner("postgresql://unused", [job, job])
    with pytest.raises(ValueError, match="at least one job"):
        MaintenanceRunner("postgresql://unused", [])
