"""AgentClient against a fake command side (tests/support/fake_command_side.py):
a real grpc.aio server on a localhost socket whose answers each test decides."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.batcher import Batcher
from agent.client import AgentClient, Backoff
from agent.spool import SnapshotSpool
from proto.vpsmon.v1 import agent_pb2
from tests.support.fake_command_side import TOKEN, FakeServer
from tests.support.spool import make_batch
from tests.support.waiting import eventually


@pytest.fixture
async def running() -> AsyncIterator[Callable[[AgentClient], None]]:
    """Starts clients as tasks and cancels them when the test ends."""
    tasks: list[asyncio.Task[None]] = []
    yield lambda client: tasks.append(asyncio.create_task(client.run()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def fast_client(address: str, spool: SnapshotSpool, **kwargs: object) -> AgentClient:
    options: dict[str, object] = {"backoff": Backoff(base=0.01, cap=0.05, rng=random.Random(1))}
    options.update(kwargs)
    return AgentClient(address, TOKEN, spool, **options)  # type: ignore[arg-type]


async def test_handshake_then_spooled_batches_oldest_first(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    spool = SnapshotSpool(tmp_path)
    batches = [make_batch(1) for _ in range(5)]
    for batch in batches:
        spool.add(batch)
    client = fast_client(address, spool)
    running(client)
    await eventually(lambda: len(spool) == 0)

    handshake = server.handshakes[0]
    assert handshake.agent_token == TOKEN
    assert handshake.hostname
    assert handshake.os
    assert handshake.agent_version
    assert handshake.boot_time_unix_ms > 1_000_000_000_000
    assert client.vps_id == 7
    assert client.connected
    assert server.received() == [b.batch_id for b in batches]
    assert server.current.message_ids == list(range(1, 7))  # handshake + 5 batches
    assert client.stats.batches_acked == 5


async def test_reconnect_resends_exactly_the_unacked_batches(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    spool = SnapshotSpool(tmp_path)
    batches = [make_batch(1) for _ in range(8)]
    for batch in batches:
        spool.add(batch)
    held = {batches[i].batch_id for i in (1, 4, 5)}
    duplicate = batches[2].batch_id
    server.policy = lambda b: "hold" if b in held else "duplicate" if b == duplicate else "ack"
    client = fast_client(address, spool)
    running(client)
    await eventually(lambda: len(server.acked) == 5)
    # The spool holds exactly the unacked batches, in order; any ack is final.
    assert spool.ids() == [b.batch_id for b in batches if b.batch_id in held]
    assert client.stats.duplicates == 1
    later = make_batch(1)  # produced while connected: spooled, then sent
    client.submit(later)
    await eventually(lambda: later.batch_id in server.acked)

    first_stream = server.current
    server.policy = lambda _b: "ack"
    first_stream.drop.set()
    await eventually(lambda: len(server.streams) == 2 and len(spool) == 0)
    resent = server.streams[1].batches
    assert resent == [b.batch_id for b in batches if b.batch_id in held]  # same ids, in order
    assert not set(resent) & (set(first_stream.batches) - held)
    assert sorted(server.acked) == sorted(b.batch_id for b in [*batches, later])
    # client_message_id restarts and increases per stream.
    assert server.streams[1].message_ids == list(range(1, len(resent) + 2))


async def test_pipelining_is_bounded_by_max_in_flight(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    server.ack_delay_s = 0.02
    spool = SnapshotSpool(tmp_path)
    for _ in range(30):
        spool.add(make_batch(1))
    running(fast_client(address, spool, max_in_flight=4))
    await eventually(lambda: len(spool) == 0)
    assert len(server.received()) == 30
    assert server.max_outstanding == 4


async def test_server_config_is_applied_live(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    server.handshake_config = agent_pb2.AgentConfig(metrics_collect_interval_seconds=5)
    batcher = Batcher(collect_interval_seconds=1, upload_interval_seconds=1, batch_max_size=60)
    client = fast_client(address, SnapshotSpool(tmp_path), on_config=batcher.apply_config)
    running(client)
    await eventually(lambda: batcher.collect_interval_seconds == 5)
    server.current.outbox.put_nowait(
        agent_pb2.MessageToAgent(
            agent_config=agent_pb2.AgentConfig(
                metrics_upload_batch_max_size=10, metrics_upload_interval_seconds=30
            )
        )
    )
    await eventually(lambda: batcher.batch_max_size == 10)
    assert (batcher.collect_interval_seconds, batcher.upload_interval_seconds) == (5, 30)


async def test_rejected_ack_is_final_and_logged(
    fake: tuple[FakeServer, str],
    running: Callable[[AgentClient], None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, address = fake
    server.policy = lambda _b: "reject"
    spool = SnapshotSpool(tmp_path)
    batch = make_batch(1)
    spool.add(batch)
    client = fast_client(address, spool)
    with caplog.at_level(logging.WARNING, logger="agent.client"):
        running(client)
        await eventually(lambda: len(spool) == 0)
    assert client.stats.snapshots_rejected == 2
    assert "rejected 2 snapshot(s)" in caplog.text
    assert "too far in the future" in caplog.text


async def test_heartbeat_when_idle(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    running(fast_client(address, SnapshotSpool(tmp_path), heartbeat_interval_s=0.05))
    await eventually(lambda: bool(server.streams) and server.current.heartbeats >= 2)


async def test_missing_ack_times_out_and_the_batch_is_resent(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    server.policy = lambda _b: "hold"  # e.g. the database is down: nothing commits
    spool = SnapshotSpool(tmp_path)
    batch = make_batch(1)
    spool.add(batch)
    client = fast_client(address, spool, ack_timeout_s=0.2)
    attempts: list[int] = []
    server.on_handshake = lambda: attempts.append(client.backoff.attempt)
    running(client)
    await eventually(lambda: len(server.streams) == 1 and len(server.received()) == 1)
    server.policy = lambda _b: "ack"
    await eventually(lambda: len(spool) == 0)
    # A stream that stored nothing does not count as a success for the backoff.
    assert attempts[:2] == [0, 1]
    assert server.received()[-1] == batch.batch_id
    assert len(server.streams) >= 2


async def test_backoff_grows_until_a_handshake_succeeds_then_resets(
    fake: tuple[FakeServer, str], running: Callable[[AgentClient], None], tmp_path: Path
) -> None:
    server, address = fake
    server.fail_handshakes = 4
    client = fast_client(address, SnapshotSpool(tmp_path))
    attempts: list[int] = []
    server.on_handshake = lambda: attempts.append(client.backoff.attempt)
    running(client)
    await eventually(lambda: client.connected)
    assert attempts == [0, 1, 2, 3, 4]
    assert client.backoff.attempt == 0


async def test_bad_token_logs_an_error_and_retries_at_the_maximum_backoff(
    fake: tuple[FakeServer, str],
    running: Callable[[AgentClient], None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, address = fake
    loop = asyncio.get_running_loop()
    times: list[float] = []
    server.on_handshake = lambda: times.append(loop.time())
    client = AgentClient(
        address, "revoked", SnapshotSpool(tmp_path), backoff=Backoff(base=0.001, cap=0.3)
    )
    with caplog.at_level(logging.ERROR, logger="agent.client"):
        running(client)
        await eventually(lambda: len(times) >= 3)
    assert "rejected the agent token" in caplog.text
    assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(times))
    assert not client.connected


def test_backoff_is_exponential_with_full_jitter_and_deterministic() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(42))
    reference = random.Random(42)
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert [backoff.ceiling(i) for i in range(9)] == ceilings
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == [reference.uniform(0.0, c) for c in ceilings]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert backoff.attempt == 9
    assert backoff.ceiling(10_000) == 30.0  # no overflow after a long outage
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 0.5
