"""A fleet for end-to-end tests: real agent processes, the synthetic agent's
snapshots fed through the real AgentClient and spool, and the ledger of what they
produced, to compare with the database."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from agent.client import AgentClient, Backoff
from agent.spool import SUFFIX, SnapshotSpool
from command_side.vps_commands import register_vps
from proto.vpsmon.v1 import agent_pb2
from tests.support.processes import CommandSideProcess, VpsmonProcess
from tests.support.synthetic_agent import now_ms, snapshot
from tests.support.waiting import eventually
from vpsmon.settings import Settings
from vpsmon.storage.schema import upgrade_schema

SPOOLED = re.compile(r"spool: added batch (\S+) with (\d+) snapshots")


@dataclass
class Ledger:
    """Every batch an agent spooled: the ground truth of what was produced."""

    batches: dict[str, int] = field(default_factory=dict)
    # Batches still in the agent's spool when it stopped: unacked, re-sent on its next start.
    kept: set[str] = field(default_factory=set)

    def add(self, batch_id: str, snapshots: int) -> None:
        assert batch_id not in self.batches, f"batch {batch_id} produced twice"
        self.batches[batch_id] = snapshots

    @property
    def snapshots(self) -> int:
        return sum(self.batches.values())


class AgentProcess(VpsmonProcess):
    """`vpsmon agent` sampling this machine every second."""

    def __init__(self, address: str, token: str, directory: Path) -> None:
        self.spool_dir = directory / "spool"
        config = directory / "agent.toml"
        config.write_text(
            f'server = "{address}"\ntoken = "{token}"\nspool_dir = "{self.spool_dir}"\n'
        )
        super().__init__(["agent", "--config", str(config), "-v"], {}, directory / "agent.log")

    def spooled_files(self) -> int:
        return len(list(self.spool_dir.glob(f"*{SUFFIX}"))) if self.spool_dir.exists() else 0

    def ledger(self) -> Ledger:
        """What this agent produced (its log) and what its spool still holds."""
        ledger = Ledger()
        if self.spool_dir.exists():
            ledger.kept = {p.stem.split("-", 1)[1] for p in self.spool_dir.glob(f"*{SUFFIX}")}
        for batch_id, count in SPOOLED.findall(self.output()):
            ledger.add(batch_id, int(count))
        return ledger


class SyntheticLoad:
    """The real client and spool, fed the synthetic agent's snapshots as fast as asked
    (the client's own reconnects and re-sends are what the tests watch)."""

    def __init__(self, address: str, token: str, spool_dir: Path, batch_size: int = 50) -> None:
        self.spool = SnapshotSpool(spool_dir)
        self.client = AgentClient(address, token, self.spool, backoff=Backoff(base=0.05, cap=0.5))
        self.ledger = Ledger()
        self.batch_size = batch_size
        self._clock_ms = now_ms() - 3_600_000
        self._tasks: list[asyncio.Task[None]] = []
        self._producing = asyncio.Event()

    def start(self) -> None:
        self._producing.set()
        self._tasks = [asyncio.create_task(self.client.run()), asyncio.create_task(self._produce())]

    async def _produce(self) -> None:
        while self._producing.is_set():
            snapshots = []
            for _ in range(self.batch_size):
                self._clock_ms += 1
                snapshots.append(snapshot(self._clock_ms))
            batch = agent_pb2.PerformanceSnapshotBatch(
                batch_id=str(uuid.uuid4()), snapshots=snapshots
            )
            self.client.submit(batch)
            self.ledger.add(batch.batch_id, len(snapshots))
            await asyncio.sleep(0.02)

    def stop_producing(self) -> None:
        self._producing.clear()

    async def drain_and_stop(self, timeout: float = 60.0) -> None:
        self.stop_producing()

        async def spool_empty() -> bool:
            return len(self.spool) == 0

        await eventually(spool_empty, "the synthetic agent's spool to drain", timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def committed_batches(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM ingested_batches")
        return count
    finally:
        await conn.close()


async def assert_exactly_once(dsn: str, ledgers: dict[int, Ledger]) -> None:
    """Every produced batch is stored once, or (not yet acked) still in the
    agent's spool to be re-sent; rows and batch ids in the database match."""
    conn = await asyncpg.connect(dsn)
    try:
        for vps_id, ledger in ledgers.items():
            stored = {
                str(r["batch_id"]): r["accepted"]
                for r in await conn.fetch(
                    "SELECT batch_id, accepted FROM ingested_batches WHERE vps_id = $1", vps_id
                )
            }
            expected = {
                b: n for b, n in ledger.batches.items() if b in stored or b not in ledger.kept
            }
            assert stored == expected, f"VPS {vps_id}: committed batches differ"
            assert ledger.kept <= set(ledger.batches), f"VPS {vps_id}: unknown spooled batches"
            rows = await conn.fetchval(
                "SELECT count(*) FROM performance_metrics WHERE vps_id = $1", vps_id
            )
            distinct = await conn.fetchval(
                "SELECT count(DISTINCT time) FROM performance_metrics WHERE vps_id = $1", vps_id
            )
            assert rows == sum(expected.values()), (
                f"VPS {vps_id}: {rows} rows, stored batches hold {sum(expected.values())}"
            )
            assert distinct == rows, f"VPS {vps_id}: duplicated snapshots"
            newest = await conn.fetchval(
                "SELECT max(time) FROM performance_metrics WHERE vps_id = $1", vps_id
            )
            latest = await conn.fetchval("SELECT time FROM vps_latest WHERE vps_id = $1", vps_id)
            assert latest == newest, f"VPS {vps_id}: vps_latest is not the newest snapshot"
    finally:
        await conn.close()


@dataclass
class Registered:
    vps_id: int
    token: str


async def register(dsn: str, count: int) -> list[Registered]:
    conn = await asyncpg.connect(dsn)
    try:
        await upgrade_schema(conn, Settings(backend="postgresql"))
        return [
            Registered(issued.vps_id, issued.token)
            for issued in [await register_vps(conn, f"host-{i}") for i in range(count)]
        ]
    finally:
        await conn.close()


@dataclass
class IngestFleet:
    """A command side process with a real agent process and synthetic loads on it."""

    dsn: str
    side: CommandSideProcess
    agent: AgentProcess
    agent_vps: Registered
    loads: dict[int, SyntheticLoad]  # by VPS id

    @classmethod
    async def start(cls, dsn: str, directory: Path, loads: int = 2) -> IngestFleet:
        real, *others = await register(dsn, 1 + loads)
        side = CommandSideProcess(dsn, directory / "side.log")
        await side.start()
        agent = AgentProcess(side.address, real.token, directory)
        await agent.start()
        fleet = cls(dsn, side, agent, real, {})
        for i, vps in enumerate(others):
            fleet.loads[vps.vps_id] = SyntheticLoad(side.address, vps.token, directory / f"load{i}")
            fleet.loads[vps.vps_id].start()
        return fleet

    async def stop_and_assert_exactly_once(self) -> None:
        """Drain the loads, stop the agent and the side cleanly, and check the database."""
        for load in self.loads.values():
            await load.drain_and_stop()
        assert await self.agent.stop() == 0
        assert await self.side.stop() == 0, self.side.output()
        ledgers = {vps_id: load.ledger for vps_id, load in self.loads.items()}
        await assert_exactly_once(self.dsn, {self.agent_vps.vps_id: self.agent.ledger(), **ledgers})
