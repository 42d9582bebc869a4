"""Ingest phase of loadtests/benchmark.py: simulated gRPC agents against the
command side (closed and open loop), beside raw asyncpg COPY of the same rows."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
from bench_common import BenchError, Figure, Setup, percentile

from proto.options import CLIENT_CHANNEL_OPTIONS
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
from vpsmon.metrics import METRIC_COLUMNS, MetricRow

BACKLOG_MS = 24 * 3600 * 1000  # ingest timestamps start a day back, 1 ms apart per VPS


def snapshot(timestamp_ms: int) -> agent_pb2.PerformanceSnapshot:
    return agent_pb2.PerformanceSnapshot(
        timestamp_unix_ms=timestamp_ms,
        cpu_overall_usage_percent=12.5,
        memory_usage_bytes=1 << 30,
        memory_total_bytes=4 << 30,
        disk_total_io_read_bytes_per_sec=10,
        disk_total_io_write_bytes_per_sec=20,
        network_interfaces=[
            agent_pb2.NetworkInterfaceStats(
                interface_name="eth0", rx_bytes_per_sec=1000, tx_bytes_per_sec=2000
            )
        ],
    )


class BenchAgentStream:
    """A benchmark's synthetic agent (asyncio): one EstablishCommunicationStream whose
    acks are matched to batches by batch_id."""

    def __init__(self, address: str, token: str) -> None:
        self.token = token
        self.channel = grpc.aio.insecure_channel(address, options=CLIENT_CHANNEL_OPTIONS)
        stub = agent_pb2_grpc.AgentCommunicationServiceStub(self.channel)
        self.call = stub.EstablishCommunicationStream()
        self.waiting: dict[str, asyncio.Future[tuple[float, agent_pb2.BatchAck]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.call.write(
            agent_pb2.MessageToServer(
                agent_handshake=agent_pb2.AgentHandshake(
                    agent_token=self.token, agent_version="bench", hostname="bench", os="Linux"
                )
            )
        )
        while True:
            reply = await asyncio.wait_for(self.call.read(), 30)
            if not isinstance(reply, agent_pb2.MessageToAgent):
                raise BenchError("the command side closed the stream during the handshake")
            if reply.WhichOneof("payload") == "handshake_ack":
                break
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                reply = await self.call.read()
                if not isinstance(reply, agent_pb2.MessageToAgent):
                    break
                if reply.WhichOneof("payload") == "batch_ack":
                    future = self.waiting.pop(reply.batch_ack.batch_id, None)
                    if future is not None and not future.done():
                        future.set_result((time.perf_counter(), reply.batch_ack))
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(BenchError("stream ended before the ack"))

    async def send(
        self, snapshots: Sequence[agent_pb2.PerformanceSnapshot]
    ) -> asyncio.Future[tuple[float, agent_pb2.BatchAck]]:
        batch_id = str(uuid.uuid4())
        future: asyncio.Future[tuple[float, agent_pb2.BatchAck]] = (
            asyncio.get_running_loop().create_future()
        )
        self.waiting[batch_id] = future
        try:
            await self.call.write(
                agent_pb2.MessageToServer(
                    performance_batch=agent_pb2.PerformanceSnapshotBatch(
                        batch_id=batch_id, snapshots=snapshots
                    )
                )
            )
        except BaseException:
            self.waiting.pop(batch_id, None)
            if future.done():
                future.exception()  # the stream ended first; nobody will await it
            else:
                future.cancel()
            raise
        return future

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.call.done_writing()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self.call.cancel()
        await self.channel.close()


@dataclass
class IngestRun:
    snapshots_per_s: float
    accepted: int
    elapsed_s: float
    ack_ms: list[float]
    failures: int


async def ingest_once(
    address: str,
    agents: list[tuple[int, str]],
    clocks: dict[int, int],
    batch: int,
    in_flight: int,
    seconds: float,
    rate: float = 0.0,
) -> IngestRun:
    """Closed loop (rate 0: each agent keeps `in_flight` batches outstanding) or
    open loop (`rate` snapshots/s offered in all, evenly spread; latency is from
    the scheduled send time, so a stalled sender counts against the server)."""
    streams = [BenchAgentStream(address, token) for _, token in agents]
    await asyncio.gather(*(s.open() for s in streams))
    acks: list[float] = []
    accepted = 0
    failures = 0
    stop_at = time.perf_counter() + seconds

    async def one(stream: BenchAgentStream, vps_id: int) -> None:
        nonlocal accepted, failures
        # One template batch per agent; only the timestamps change (cheap on upb).
        template = [snapshot(0) for _ in range(batch)]
        slots = asyncio.Semaphore(in_flight)
        pending: set[asyncio.Task[None]] = set()

        async def wait_ack(
            sent: float, future: asyncio.Future[tuple[float, agent_pb2.BatchAck]]
        ) -> None:
            nonlocal accepted, failures
            try:
                acked, ack = await asyncio.wait_for(future, 60)
                acks.append((acked - sent) * 1000)
                accepted += ack.accepted
                if ack.rejected or ack.duplicate:
                    failures += 1
            except (BenchError, TimeoutError):
                failures += 1
            finally:
                slots.release()

        period = batch * len(agents) / rate if rate > 0 else 0.0
        scheduled = time.perf_counter() + random.random() * period
        while time.perf_counter() < stop_at:
            if period:
                await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            await slots.acquire()
            base = clocks[vps_id]
            for i, snap in enumerate(template):
                snap.timestamp_unix_ms = base + i
            clocks[vps_id] = base + batch
            sent = scheduled if period else time.perf_counter()
            scheduled += period
            future = await stream.send(template)
            task = asyncio.create_task(wait_ack(sent, future))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)

    began = time.perf_counter()
    try:
        await asyncio.gather(
            *(one(s, vps_id) for s, (vps_id, _) in zip(streams, agents, strict=True))
        )
        elapsed = time.perf_counter() - began
    finally:
        await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)
    return IngestRun(accepted / elapsed, accepted, elapsed, acks, failures)


async def raw_copy(dsn: str, vps_ids: list[int], rows: int, chunk: int) -> float:
    """Rows/s of plain COPY of `rows` rows into performance_metrics, one connection."""
    base = datetime.now(UTC) - timedelta(days=3) + timedelta(milliseconds=random.randrange(10**8))
    records: list[MetricRow] = [
        (
            base + timedelta(milliseconds=i // len(vps_ids)),
            vps_ids[i % len(vps_ids)],
            12.5,
            1 << 30,
            4 << 30,
            10,
            20,
            1000,
            2000,
        )
        for i in range(rows)
    ]
    conn = await asyncpg.connect(dsn)
    try:
        began = time.perf_counter()
        for start in range(0, rows, chunk):
            await conn.copy_records_to_table(
                "performance_metrics",
                records=records[start : start + chunk],
                columns=METRIC_COLUMNS,
            )
        return rows / (time.perf_counter() - began)
    finally:
        await conn.close()


async def raw_copy_latency(dsn: str, vps_id: int, batch: int, samples: int) -> list[float]:
    """ms per COPY of one batch (its own transaction), one connection, sequential."""
    out: list[float] = []
    conn = await asyncpg.connect(dsn)
    try:
        for n in range(samples):
            # Batches far enough apart that no two share a timestamp (the index is unique).
            base = datetime.now(UTC) - timedelta(days=4, milliseconds=n * (batch + 1000))
            records = [
                (base + timedelta(milliseconds=i), vps_id, 1.0, 1, 2, 3, 4, 5, 6)
                for i in range(batch)
            ]
            began = time.perf_counter()
            await conn.copy_records_to_table(
                "performance_metrics", records=records, columns=METRIC_COLUMNS
            )
            out.append((time.perf_counter() - began) * 1000)
    finally:
        await conn.close()
    return out


async def phase_ingest(
    setup: Setup, address: str, args: argparse.Namespace, cs_pid: int
) -> list[Figure]:
    clocks = {
        vps_id: int(time.time() * 1000) - BACKLOG_MS + i
        for i, (vps_id, _) in enumerate(setup.ingest)
    }
    runs: list[IngestRun] = []
    copies: list[float] = []
    ids = [v for v, _ in setup.ingest]
    profiler: subprocess.Popen[bytes] | None = None
    for repeat in range(args.repeats):
        if repeat == 0 and args.profile:
            profiler = _start_profiler(args, cs_pid)
        run = await ingest_once(
            address, setup.ingest, clocks, args.batch_size, args.in_flight, args.ingest_seconds
        )
        if profiler is not None:
            profiler.wait()
            profiler = None
        runs.append(run)
        await asyncio.sleep(0.5)
        copy = await raw_copy(setup.dsn, ids, max(run.accepted, 1000), args.copy_chunk)
        copies.append(copy)
        p50, p99 = percentile(run.ack_ms, 50), percentile(run.ack_ms, 99)
        print(
            f"ingest {repeat + 1}/{args.repeats}: {run.snapshots_per_s:,.0f} snapshots/s"
            f" ({run.accepted:,} in {run.elapsed_s:.1f} s, {run.failures} failures),"
            f" ack p50 {p50:.1f} ms p99 {p99:.1f} ms; raw COPY {copy:,.0f} rows/s",
            flush=True,
        )
        if run.failures:
            raise BenchError(f"{run.failures} batches failed (rejected, duplicate or no ack)")
    open_runs: list[IngestRun] = []
    for repeat in range(args.repeats if args.rate > 0 else 0):
        run = await ingest_once(
            address,
            setup.ingest,
            clocks,
            args.batch_size,
            args.in_flight,
            args.ingest_seconds,
            rate=args.rate,
        )
        open_runs.append(run)
        print(
            f"open loop {repeat + 1}/{args.repeats} at {args.rate:,.0f}/s offered:"
            f" {run.snapshots_per_s:,.0f} snapshots/s, ack p50"
            f" {percentile(run.ack_ms, 50):.1f} ms p99 {percentile(run.ack_ms, 99):.1f} ms",
            flush=True,
        )
        if run.failures:
            raise BenchError(f"{run.failures} batches failed (rejected, duplicate or no ack)")
        await asyncio.sleep(0.5)
    copy_ack = await raw_copy_latency(setup.dsn, ids[0], args.batch_size, args.latency_samples)
    acks = [a for r in runs for a in r.ack_ms]
    open_figures = []
    if open_runs:
        open_figures = [
            Figure(
                "ingest",
                f"open loop: achieved snapshots/s at {args.rate:,.0f}/s offered",
                "rows/s",
                [r.snapshots_per_s for r in open_runs],
                "offered rate",
                [args.rate],
                higher_is_better=True,
            ),
            Figure(
                "ingest",
                f"open loop: ack latency at {args.rate:,.0f}/s offered",
                "ms",
                [a for r in open_runs for a in r.ack_ms],
                f"COPY of one {args.batch_size}-row batch",
                copy_ack,
                note="TARGET p99 <= 250 ms",
            ),
        ]
    return [
        Figure(
            "ingest",
            f"closed loop: gRPC snapshots/s, {args.agents} agents x batch {args.batch_size},"
            f" {args.in_flight} in flight",
            "rows/s",
            [r.snapshots_per_s for r in runs],
            "asyncpg COPY, same rows, 1 conn",
            copies,
            higher_is_better=True,
            note="HEADLINE",
        ),
        Figure(
            "ingest",
            "closed loop (saturated): ack latency (send -> BatchAck)",
            "ms",
            acks,
            f"COPY of one {args.batch_size}-row batch",
            copy_ack,
            note="queueing: ~ batches in flight / throughput",
        ),
        *open_figures,
    ]


def _start_profiler(args: argparse.Namespace, pid: int) -> subprocess.Popen[bytes] | None:
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("py-spy not found; no profile", flush=True)
        return None
    out: Path = args.profile
    out.parent.mkdir(parents=True, exist_ok=True)
    seconds = max(1, int(args.ingest_seconds) - 1)
    print(f"profiling the command side (pid {pid}) for {seconds} s -> {out}", flush=True)
    return subprocess.Popen(
        [
            *(str(py_spy), "record", "--pid", str(pid), "--duration", str(seconds)),
            *("--format", "raw", "--rate", "200", "-o", str(out)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
