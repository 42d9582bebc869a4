"""Greedy-agent phase of loadtests/benchmark.py: one agent sends as fast as it
can (1000-snapshot batches, 16 in flight, reconnecting at once whatever the
server says) beside polite agents that send one snapshot a second, as real
agents do. The polite agents' ack latency is measured alone, beside the
greedy one with the per-VPS ingest budget on (the default), and with it off."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import grpc
from bench_common import BenchError, Figure, Setup, percentile
from bench_ingest import BACKLOG_MS, BenchAgentStream, snapshot

from proto.vpsmon.v1 import agent_pb2

GREEDY_BATCH = 1000
GREEDY_IN_FLIGHT = 16


@dataclass
class GreedyTally:
    accepted: int = 0
    streams: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


async def _polite(address: str, agents: list[tuple[int, str]], seconds: float) -> list[float]:
    """Ack latencies (ms) of agents that each send a 1-snapshot batch every second."""
    streams = [BenchAgentStream(address, token) for _, token in agents]
    await asyncio.gather(*(s.open() for s in streams))
    latencies: list[float] = []

    async def one(stream: BenchAgentStream, offset: float) -> None:
        await asyncio.sleep(offset)  # spread the fleet over the second, as real agents are
        stop_at = time.perf_counter() + seconds
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            future = await stream.send([snapshot(time.time_ns() // 1_000_000)])
            acked, ack = await asyncio.wait_for(future, 60)
            if ack.accepted != 1:
                raise BenchError(f"a polite agent's snapshot was not stored: {ack}")
            latencies.append((acked - sent) * 1000)
            await asyncio.sleep(max(0.0, sent + 1.0 - time.perf_counter()))

    try:
        await asyncio.gather(*(one(s, i / len(streams)) for i, s in enumerate(streams)))
    finally:
        await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)
    return latencies


async def _greedy(
    address: str, token: str, clock: list[int], tally: GreedyTally, stop: asyncio.Event
) -> None:
    """Until ``stop``: saturate the stream; on any end, reconnect at once. (Not
    until cancelled: gRPC turns a cancellation mid-call into a CANCELLED error.)"""
    while not stop.is_set():
        stream = BenchAgentStream(address, token)
        tally.streams += 1
        try:
            await stream.open()
            slots = asyncio.Semaphore(GREEDY_IN_FLIGHT)

            async def counted(
                future: asyncio.Future[tuple[float, agent_pb2.BatchAck]],
                slots: asyncio.Semaphore = slots,
            ) -> None:
                try:
                    _, ack = await future
                    tally.accepted += ack.accepted
                finally:
                    slots.release()

            while not stop.is_set():
                await slots.acquire()
                batch = [snapshot(clock[0] + i) for i in range(GREEDY_BATCH)]
                clock[0] += GREEDY_BATCH
                task = asyncio.ensure_future(counted(await stream.send(batch)))
                # A stream the server ends fails its futures: expected here.
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
        except (grpc.aio.AioRpcError, BenchError, asyncio.InvalidStateError) as error:
            code = error.code().name if isinstance(error, grpc.aio.AioRpcError) else "ended"
            tally.refusals[code] = tally.refusals.get(code, 0) + 1
        finally:
            with contextlib.suppress(Exception):
                await stream.close()


async def _round(
    address: str,
    polite: list[tuple[int, str]],
    greedy: tuple[int, str] | None,
    clock: list[int],
    seconds: float,
) -> tuple[list[float], GreedyTally]:
    tally = GreedyTally()
    stop = asyncio.Event()
    task = None
    if greedy is not None:
        task = asyncio.create_task(_greedy(address, greedy[1], clock, tally, stop))
    try:
        return await _polite(address, polite, seconds), tally
    finally:
        stop.set()
        if task is not None:
            try:
                await asyncio.wait_for(task, 30)
            except TimeoutError:
                raise BenchError("the greedy agent did not stop") from None


async def phase_greedy(
    setup: Setup, budgeted: str, unlimited: str, args: argparse.Namespace
) -> list[Figure]:
    seconds = args.greedy_seconds
    polite = setup.ingest
    clock = [int(time.time() * 1000) - BACKLOG_MS]
    alone: list[float] = []
    beside_budget: list[float] = []
    beside_unlimited: list[float] = []
    greedy_rates: list[float] = []
    unlimited_rates: list[float] = []
    for repeat in range(args.repeats):
        lat, _ = await _round(budgeted, polite, None, clock, seconds)
        alone += lat
        lat, tally = await _round(budgeted, polite, setup.greedy, clock, seconds)
        beside_budget += lat
        greedy_rates.append(tally.accepted / seconds)
        lat2, unlimited_tally = await _round(unlimited, polite, setup.greedy, clock, seconds)
        beside_unlimited += lat2
        unlimited_rates.append(unlimited_tally.accepted / seconds)
        print(
            f"greedy {repeat + 1}/{args.repeats}: polite ack p99 alone"
            f" {percentile(alone, 99):.1f} ms, beside greedy (budget on)"
            f" {percentile(lat, 99):.1f} ms, (budget off) {percentile(lat2, 99):.1f} ms;"
            f" greedy stored {tally.accepted / seconds:,.0f}/s with the budget"
            f" ({tally.streams} streams, ended {tally.refusals}),"
            f" {unlimited_tally.accepted / seconds:,.0f}/s without",
            flush=True,
        )
    who = f"{len(polite)} polite agents, 1 snapshot/s each"
    return [
        Figure(
            "greedy",
            f"{who}: ack latency beside a greedy agent, budget on",
            "ms",
            beside_budget,
            "the same agents alone",
            alone,
            note="TARGET p99 unaffected",
        ),
        Figure(
            "greedy",
            f"{who}: ack latency beside a greedy agent, budget off",
            "ms",
            beside_unlimited,
            "the same agents alone",
            alone,
        ),
        Figure(
            "greedy",
            "greedy agent: snapshots/s stored with the budget (default: 50/s + 30 s burst)",
            "rows/s",
            greedy_rates,
            "the same greedy agent, budget off",
            unlimited_rates,
        ),
    ]
