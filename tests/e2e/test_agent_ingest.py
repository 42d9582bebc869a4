"""Agents to database with real processes: exactly once, through every fault."""

from __future__ import annotations

from pathlib import Path

from tests.support.fleet import (
    AgentProcess,
    IngestFleet,
    SyntheticLoad,
    assert_exactly_once,
    committed_batches,
    register,
)
from tests.support.processes import CommandSideProcess
from tests.support.waiting import eventually


async def test_agent_process_snapshots_land_exactly_once(
    embedded_migrated_database: str, tmp_path: Path
) -> None:
    (vps,) = await register(embedded_migrated_database, 1)
    side = CommandSideProcess(embedded_migrated_database, tmp_path / "side.log")
    await side.start()
    agent = AgentProcess(side.address, vps.token, tmp_path)
    await agent.start()
    try:

        async def five_batches() -> bool:
            return await committed_batches(embedded_migrated_database) >= 5

        await eventually(five_batches, "five committed batches from the agent", timeout=60)
    finally:
        assert await agent.stop() == 0, agent.output()
        assert await side.stop() == 0, side.output()
    ledger = agent.ledger()
    assert ledger.snapshots >= 5
    await assert_exactly_once(embedded_migrated_database, {vps.vps_id: ledger})


async def test_kill_9_of_the_command_side_mid_stream(
    embedded_migrated_database: str, tmp_path: Path
) -> None:
    fleet = await IngestFleet.start(embedded_migrated_database, tmp_path)

    async def some_committed() -> bool:
        return await committed_batches(embedded_migrated_database) >= 20

    await eventually(some_committed, "batches before the crash", timeout=60)
    await fleet.side.kill()

    async def spools_growing() -> bool:
        return all(len(load.spool) >= 5 for load in fleet.loads.values())

    await eventually(
        spools_growing, "batches to pile up in the spools while the server is down", timeout=60
    )
    await fleet.side.start()
    before = await committed_batches(embedded_migrated_database)

    async def progressing() -> bool:
        return await committed_batches(embedded_migrated_database) >= before + 20

    await eventually(progressing, "ingest to resume after the restart", timeout=60)
    await fleet.stop_and_assert_exactly_once()


async def test_agent_restarted_with_unacked_batches_in_its_spool(
    embedded_migrated_database: str, tmp_path: Path
) -> None:
    (vps,) = await register(embedded_migrated_database, 1)
    side = CommandSideProcess(embedded_migrated_database, tmp_path / "side.log")
    agent = AgentProcess(side.address, vps.token, tmp_path)
    await agent.start()  # the server is not up: every batch stays unacked

    async def three_spooled() -> bool:
        return agent.spooled_files() >= 3

    await eventually(three_spooled, "unacked batches in the agent's spool", timeout=60)
    assert await agent.stop() == 0
    left = agent.spooled_files()
    assert left >= 3
    await side.start()
    await agent.start()

    async def spool_drained() -> bool:
        return (
            agent.spooled_files() == 0
            and await committed_batches(embedded_migrated_database) > left
        )

    await eventually(spool_drained, "the restarted agent to deliver its spool", timeout=60)
    assert await agent.stop() == 0
    assert await side.stop() == 0
    await assert_exactly_once(embedded_migrated_database, {vps.vps_id: agent.ledger()})


async def test_command_side_down_for_a_while_then_back(
    embedded_migrated_database: str, tmp_path: Path
) -> None:
    real, loader_vps = await register(embedded_migrated_database, 2)
    side = CommandSideProcess(embedded_migrated_database, tmp_path / "side.log")
    await side.start()
    agent = AgentProcess(side.address, real.token, tmp_path)
    await agent.start()
    loader = SyntheticLoad(side.address, loader_vps.token, tmp_path / "load")
    loader.start()

    async def flowing() -> bool:
        return await committed_batches(embedded_migrated_database) >= 10

    await eventually(flowing, "ingest to flow", timeout=60)
    assert await side.stop() == 0  # graceful: in-flight batches are acked first

    async def outage_backlog() -> bool:
        return agent.spooled_files() >= 3 and len(loader.spool) >= 20

    await eventually(outage_backlog, "a backlog during the outage", timeout=60)
    await side.start()
    await loader.drain_and_stop()

    async def agent_drained() -> bool:
        return agent.spooled_files() == 0

    await eventually(agent_drained, "the agent's backlog to land", timeout=60)
    assert await agent.stop() == 0
    assert await side.stop() == 0
    await assert_exactly_once(
        embedded_migrated_database, {real.vps_id: agent.ledger(), loader_vps.vps_id: loader.ledger}
    )
