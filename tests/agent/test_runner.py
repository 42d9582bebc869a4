"""run_agent end to end (fake collector, real gRPC) and the ``vpsmon agent`` CLI."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.config import AgentSettings
from agent.runner import main, run_agent
from agent.spool import SnapshotSpool
from proto.vpsmon.v1 import agent_pb2
from tests.support.fake_command_side import TOKEN, FakeServer
from tests.support.waiting import eventually

UNREACHABLE = "127.0.0.1:1"


class FakeCollector:
    """Like MetricsCollector: the first call primes and returns None."""

    def __init__(self, stall_on_call: int | None = None, stall_s: float = 0.0) -> None:
        self.calls: list[float] = []
        self.produced = 0
        self._stall_on_call = stall_on_call
        self._stall_s = stall_s

    def sample(
        self, *, wall_time_ms: int | None = None, monotonic_s: float | None = None
    ) -> agent_pb2.PerformanceSnapshot | None:
        self.calls.append(time.monotonic() if monotonic_s is None else monotonic_s)
        if len(self.calls) == self._stall_on_call:
            time.sleep(self._stall_s)  # a stalled host: the event loop is blocked
        if len(self.calls) == 1:
            return None
        self.produced += 1
        return agent_pb2.PerformanceSnapshot(
            timestamp_unix_ms=time.time_ns() // 1_000_000, memory_total_bytes=1
        )


def settings_for(tmp_path: Path, server: str, upload_interval: int = 60) -> AgentSettings:
    return AgentSettings(
        token=TOKEN,
        server=server,
        spool_dir=tmp_path / "spool",
        metrics_upload_interval_seconds=upload_interval,
    )


async def test_shutdown_sends_the_partial_batch_and_waits_for_its_ack(
    fake: tuple[FakeServer, str], tmp_path: Path
) -> None:
    server, address = fake
    collector = FakeCollector()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_agent(settings_for(tmp_path, address), stop, collector=collector)
    )
    await eventually(lambda: len(collector.calls) >= 3 and bool(server.streams))
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert collector.produced >= 2
    assert sum(server.snapshot_counts.values()) == collector.produced
    assert set(server.acked) == set(server.snapshot_counts)
    assert SnapshotSpool(tmp_path / "spool").ids() == []


async def test_a_stop_during_a_reconnect_still_delivers_the_batch_awaiting_its_ack(
    fake: tuple[FakeServer, str], tmp_path: Path
) -> None:
    """The CI flake of the kill -9 test, made deterministic: the stream breaks
    while a batch waits for its ack, and the stop comes before the agent is
    connected again. The stopping agent reconnects and delivers it."""
    server, address = fake
    held: set[str] = set()

    def hold_the_first(batch_id: str) -> str:
        if not held or (batch_id in held and len(server.streams) == 1):
            held.add(batch_id)
            return "hold"
        return "ack"

    server.policy = hold_the_first
    collector = FakeCollector()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_agent(settings_for(tmp_path, address, upload_interval=1), stop, collector=collector)
    )
    await eventually(lambda: bool(held))
    server.fail_handshakes = 1  # the next connect is refused: the agent is mid-reconnect
    server.current.drop.set()
    await eventually(lambda: len(server.handshakes) >= 2)
    stop.set()
    await asyncio.wait_for(task, timeout=15)
    assert held <= set(server.acked)
    assert SnapshotSpool(tmp_path / "spool").ids() == []
    assert sum(server.snapshot_counts.values()) == collector.produced


async def test_a_batch_whose_ack_never_comes_is_kept_and_replayed_with_its_id(
    fake: tuple[FakeServer, str], tmp_path: Path
) -> None:
    server, address = fake
    server.policy = lambda _batch_id: "hold"
    settings = settings_for(tmp_path, address, upload_interval=1)
    collector = FakeCollector()
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent(settings, stop, collector=collector, shutdown_grace_s=0.5))
    await eventually(lambda: len(server.received()) >= 2)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    kept = SnapshotSpool(tmp_path / "spool").ids()
    assert set(server.received()) <= set(kept)

    server.policy = lambda _batch_id: "ack"
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent(settings, stop, collector=FakeCollector()))
    await eventually(lambda: set(kept) <= set(server.acked))
    stop.set()
    await asyncio.wait_for(task, timeout=15)
    assert SnapshotSpool(tmp_path / "spool").ids() == []


async def test_nothing_collected_is_lost_while_the_server_is_down(tmp_path: Path) -> None:
    collector = FakeCollector()
    stop = asyncio.Event()
    settings = settings_for(tmp_path, UNREACHABLE, upload_interval=1)
    task = asyncio.create_task(run_agent(settings, stop, collector=collector, shutdown_grace_s=0.5))
    await eventually(lambda: len(collector.calls) >= 4)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    spooled = SnapshotSpool(tmp_path / "spool").pending()
    assert sum(len(batch.snapshots) for batch in spooled) == collector.produced
    assert all(len(batch.snapshots) == 1 for batch in spooled)  # 1 s collect = 1 s upload


async def test_missed_ticks_are_skipped_not_burst(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    collector = FakeCollector(stall_on_call=2, stall_s=2.3)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_agent(
            settings_for(tmp_path, UNREACHABLE), stop, collector=collector, shutdown_grace_s=0.5
        )
    )
    with caplog.at_level(logging.WARNING, logger="agent.runner"):
        await eventually(lambda: len(collector.calls) >= 5, timeout=15)
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    start, *rest = collector.calls
    offsets = [t - start for t in rest]
    # Tick 1 stalls until ~3.3 s: tick 2 is dropped, the late tick 3 runs once,
    # and sampling is back on the original 1 s grid (no drift) at tick 4.
    assert offsets[0] == pytest.approx(1.0, abs=0.2)
    assert offsets[1] == pytest.approx(3.3, abs=0.25)
    assert offsets[2] == pytest.approx(4.0, abs=0.2)
    assert offsets[3] == pytest.approx(5.0, abs=0.2)
    assert "skipped 1 tick(s)" in caplog.text


def test_main_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('token = "x"\nserver_address = "h:1"\n')
    assert main(["--config", str(config)]) == 2
    assert "unknown key(s) server_address" in capsys.readouterr().err


def test_agent_imports_nothing_from_the_server_side() -> None:
    code = (
        "import sys, agent.runner, agent.client, agent.collector\n"
        "bad = {'asyncpg', 'sanic', 'pydantic', 'orjson', 'command_side', 'query_side'}\n"
        "assert not bad & set(sys.modules), bad & set(sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
