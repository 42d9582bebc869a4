"""vpsmon benchmark: every DESIGN.md target beside a baseline measured in the same run.

    .venv/bin/python loadtests/benchmark.py [--quick] [--repeats N] [--agents N] [--batch-size B]

One machine, 127.0.0.1 only, a throwaway embedded PostgreSQL (or
VPSMON_DATABASE_URL: point it at a scratch database). Phases:

1. history: H VPSes x D days, one row per VPS per minute, binary COPY, then a
   rollup refresh and retention (the state of a long-running install);
2. ingest: N asyncio gRPC agents against `vpsmon command-side` (a
   subprocess), each one stream, batches of B, a few in flight; beside raw
   asyncpg COPY of the same number of rows into performance_metrics;
3. freshness: BatchAck -> visible in /metrics/latest and on SSE
   (`vpsmon query-side --workers 2`), beside polling vps_latest directly;
4. queries: /metrics/latest and timeseries over HTTP, beside the same SQL
   through asyncpg;
5. agent footprint: `vpsmon agent` at 1 s beside prometheus-node-exporter
   scraped once a second.

Prints one markdown table (median and p99 over the repeats / samples) and
writes the raw numbers to loadtests/reports/benchmark.json. Everything it
starts is stopped on the way out, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any

import asyncpg
import grpc
import httpx
import psutil

from command_side.vps_commands import register_vps
from projections import postgres_rollups
from proto.options import CLIENT_CHANNEL_OPTIONS
from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
from query_side.accounts import create_api_token, create_user
from query_side.timeseries import fetch_timeseries, plan_timeseries
from vpsmon.metrics import METRIC_COLUMNS, MetricRow
from vpsmon.storage.dsn import with_database
from vpsmon.storage.embedded import EmbeddedPostgres

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_REPORT = HERE / "reports" / "benchmark.json"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
TABLE_HEADER = "| phase | metric | vpsmon median | vpsmon p99 | baseline | baseline median"
BACKLOG_MS = 24 * 3600 * 1000  # ingest timestamps start a day back, 1 ms apart per VPS


class BenchError(RuntimeError):
    """A failure reported as one line."""


class Interrupted(BaseException):
    """SIGTERM, handled like Ctrl-C."""


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Figure:
    phase: str
    metric: str
    unit: str
    values: list[float]
    baseline_name: str
    baseline: list[float]
    higher_is_better: bool = False
    note: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "metric": self.metric,
            "unit": self.unit,
            "median": percentile(self.values, 50),
            "p99": percentile(self.values, 99),
            "baseline": self.baseline_name,
            "baseline_median": percentile(self.baseline, 50),
            "baseline_p99": percentile(self.baseline, 99),
            "samples": len(self.values),
            "baseline_samples": len(self.baseline),
            "note": self.note,
            "values": self.values,
            "baseline_values": self.baseline,
        }


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def render_table(figures: list[Figure]) -> str:
    lines = [
        TABLE_HEADER + " | baseline p99 | ratio (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fig in figures:
        s = fig.summary()
        ratio = math.nan
        if s["baseline_median"] and not math.isnan(s["baseline_median"]):
            ratio = s["median"] / s["baseline_median"]
        ratio_text = "n/a" if math.isnan(ratio) else f"{ratio:.2f}x"
        metric = f"{fig.metric} ({fig.unit})"
        if fig.note:
            metric += f" — {fig.note}"
        lines.append(
            f"| {fig.phase} | {metric} | {_fmt(s['median'])} | {_fmt(s['p99'])} |"
            f" {fig.baseline_name} | {_fmt(s['baseline_median'])} | {_fmt(s['baseline_p99'])} |"
            f" {ratio_text} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Children:
    """Every process this benchmark starts; stopped in reverse order."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(
        self, name: str, args: list[str], env: dict[str, str], log: IO[bytes] | None
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop them in order
            preexec_fn=_die_with_parent,
        )
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> int | None:
        for entry in list(self._procs):
            if entry[1] is proc:
                self._procs.remove(entry)
                return _stop(entry[0], proc)
        return proc.returncode

    def stop_all(self) -> None:
        while self._procs:
            name, proc = self._procs.pop()
            _stop(name, proc)


def _stop(name: str, proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in {STOP_TIMEOUT:g} s; killing it", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: it and its workers
            proc.wait()
    # Workers (Sanic) of a stopped parent: same session id = the parent's pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


async def wait_for_port(proc: subprocess.Popen[bytes], port: int, name: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            tail = _tail(log)
            raise BenchError(f"{name} exited with {proc.returncode}:\n{tail}")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"{name} not listening after {STARTUP_TIMEOUT:g} s") from None
            await asyncio.sleep(0.05)


def _tail(path: Path, size: int = 2000) -> str:
    return path.read_text(errors="replace")[-size:]


# --------------------------------------------------------------------------- database


@contextlib.contextmanager
def database(work: Path) -> Iterator[str]:
    if url := os.environ.get("VPSMON_DATABASE_URL"):
        yield url
        return
    server = EmbeddedPostgres(work / "pg18")
    print(f"starting embedded PostgreSQL in {server.data_dir}", flush=True)
    server_dsn = server.start()
    try:
        asyncio.run(_execute(server_dsn, 'CREATE DATABASE "vpsmon_bench"'))
        yield with_database(server_dsn, "vpsmon_bench")
    finally:
        print("stopping embedded PostgreSQL", flush=True)
        server.stop()


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class Setup:
    dsn: str
    env: dict[str, str]
    work: Path
    api_token: str
    ingest: list[tuple[int, str]]  # (vps_id, agent token)
    fresh: tuple[int, str]
    footprint: tuple[int, str]
    history: list[int]
    history_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)


async def prepare(dsn: str, env: dict[str, str], work: Path, args: argparse.Namespace) -> Setup:
    run = uuid.uuid4().hex[:6]
    conn = await asyncpg.connect(dsn)
    try:
        user = f"bench-{run}"
        await create_user(conn, user, uuid.uuid4().hex, admin=True)
        api_token = await create_api_token(conn, user, "benchmark")

        async def vps(name: str) -> tuple[int, str]:
            issued = await register_vps(conn, f"bench-{run}-{name}")
            return issued.vps_id, issued.token

        ingest = [await vps(f"ingest-{i:04d}") for i in range(args.agents)]
        fresh = await vps("fresh")
        footprint = await vps("agent")
        history = [(await vps(f"hist-{i:04d}"))[0] for i in range(args.history_vps)]
    finally:
        await conn.close()
    return Setup(dsn, env, work, api_token, ingest, fresh, footprint, history)


def _history_rows(vps_ids: list[int], start: datetime, minutes: int) -> Iterator[MetricRow]:
    rnd = random.Random(7)
    total = 4 << 30
    for vps_id in vps_ids:
        moment = start
        step = timedelta(minutes=1)
        for _ in range(minutes):
            cpu = rnd.random() * 100
            yield (
                moment,
                vps_id,
                cpu,
                int(cpu * 1e7),
                total,
                int(cpu * 1000),
                int(cpu * 2000),
                int(cpu * 3000),
                int(cpu * 4000),
            )
            moment += step


def _chunks(rows: Iterator[MetricRow], size: int) -> Iterator[list[MetricRow]]:
    chunk: list[MetricRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def seed_history(setup: Setup, days: int) -> None:
    """One row per VPS per minute for `days`, then rollups, retention, vps_latest."""
    minutes = days * 24 * 60
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=minutes)
    total = len(setup.history) * minutes
    print(f"seeding history: {len(setup.history)} VPSes x {days} days = {total:,} rows", flush=True)
    conn = await asyncpg.connect(setup.dsn)
    try:
        began = time.perf_counter()
        for chunk in _chunks(_history_rows(setup.history, start, minutes), 250_000):
            await conn.copy_records_to_table(
                "performance_metrics", records=chunk, columns=METRIC_COLUMNS
            )
        setup.timings["history_copy_s"] = time.perf_counter() - began
        setup.history_rows = total
        began = time.perf_counter()
        await postgres_rollups.refresh(conn, wait=True)
        setup.timings["rollup_refresh_s"] = time.perf_counter() - began
        began = time.perf_counter()
        await postgres_rollups.enforce_retention(conn)
        setup.timings["retention_s"] = time.perf_counter() - began
        cols = ", ".join(METRIC_COLUMNS)
        await conn.execute(
            f"INSERT INTO vps_latest ({cols})"
            f" SELECT DISTINCT ON (vps_id) {cols} FROM performance_metrics"
            " WHERE vps_id = ANY($1::int[]) ORDER BY vps_id, time DESC"
            " ON CONFLICT (vps_id) DO NOTHING",
            setup.history,
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(
        "history: copy {history_copy_s:.1f} s, refresh {rollup_refresh_s:.1f} s,"
        " retention {retention_s:.1f} s".format(**setup.timings),
        flush=True,
    )


# --------------------------------------------------------------------------- gRPC agents


def _snapshot(timestamp_ms: int) -> agent_pb2.PerformanceSnapshot:
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


class AgentStream:
    """One EstablishCommunicationStream; acks are matched to batches by batch_id."""

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
        await self.call.write(
            agent_pb2.MessageToServer(
                performance_batch=agent_pb2.PerformanceSnapshotBatch(
                    batch_id=batch_id, snapshots=snapshots
                )
            )
        )
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
    streams = [AgentStream(address, token) for _, token in agents]
    await asyncio.gather(*(s.open() for s in streams))
    acks: list[float] = []
    accepted = 0
    failures = 0
    stop_at = time.perf_counter() + seconds

    async def one(stream: AgentStream, vps_id: int) -> None:
        nonlocal accepted, failures
        # One template batch per agent; only the timestamps change (cheap on upb).
        template = [_snapshot(0) for _ in range(batch)]
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
            base = datetime.now(UTC) - timedelta(days=4, seconds=n)
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


# --------------------------------------------------------------------------- HTTP


class RawHttp:
    """A minimal keep-alive HTTP/1.1 GET client: loopback round trip ~ server time."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise BenchError(f"GET {path}: no Content-Length in the response")
        body = await self.reader.readexactly(length)
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.writer = None


async def wait_for_query_side(
    proc: subprocess.Popen[bytes], port: int, log: Path, workers: int
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=2) as client:
        while True:
            if proc.poll() is not None:
                tail = _tail(log)
                raise BenchError(f"query side exited with {proc.returncode}:\n{tail}")
            ready = _tail(log, 1 << 20).count("Worker ready")
            try:
                healthy = (await client.get("/api/health")).status_code == 200
            except httpx.TransportError:
                healthy = False
            if healthy and ready >= workers:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"query side not ready after {STARTUP_TIMEOUT:g} s")
            await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- phases


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


async def phase_freshness(
    setup: Setup, address: str, http_port: int, args: argparse.Namespace
) -> list[Figure]:
    vps_id, token = setup.fresh
    base = f"http://{HOST}:{http_port}"
    headers = {"Authorization": f"Bearer {setup.api_token}"}
    http_ms: list[float] = []
    sse_ms: list[float] = []
    sql_ms: list[float] = []
    poll = args.poll_ms / 1000
    stream = AgentStream(address, token)
    await stream.open()
    conn = await asyncpg.connect(setup.dsn)
    raw = RawHttp(http_port, setup.api_token)
    try:
        async with (
            httpx.AsyncClient(base_url=base, headers=headers) as client,
            client.stream(
                "GET", f"/api/vps/{vps_id}/metrics/stream", timeout=httpx.Timeout(10, read=120)
            ) as response,
        ):
            if response.status_code != 200:
                raise BenchError(f"SSE stream: HTTP {response.status_code}")
            lines = response.aiter_lines()
            ids: asyncio.Queue[tuple[float, int]] = asyncio.Queue()

            async def read_sse() -> None:
                async for line in lines:
                    if line.startswith("id:"):
                        ids.put_nowait((time.perf_counter(), int(line[3:].strip())))

            sse_task = asyncio.create_task(read_sse())
            try:
                total = args.repeats * args.freshness_samples
                for _ in range(total):
                    ts = int(time.time() * 1000)
                    future = await stream.send([_snapshot(ts)])
                    acked, _ack = await asyncio.wait_for(future, 30)
                    expected = datetime.fromtimestamp(ts / 1000, UTC)

                    async def http_seen(expected: datetime = expected) -> float:
                        while True:
                            status, body = await raw.get(f"/api/vps/{vps_id}/metrics/latest")
                            if status == 200:
                                got = datetime.fromisoformat(json.loads(body)["time"])
                                if got >= expected:
                                    return time.perf_counter()
                            await asyncio.sleep(poll)

                    async def sql_seen(expected: datetime = expected) -> float:
                        while True:
                            got = await conn.fetchval(
                                "SELECT time FROM vps_latest WHERE vps_id = $1", vps_id
                            )
                            if got is not None and got >= expected:
                                return time.perf_counter()
                            await asyncio.sleep(poll)

                    async def sse_seen(ts: int = ts) -> float:
                        while True:
                            seen, event_id = await ids.get()
                            if event_id >= ts:
                                return seen

                    got_http, got_sql, got_sse = await asyncio.wait_for(
                        asyncio.gather(http_seen(), sql_seen(), sse_seen()), 10
                    )
                    http_ms.append((got_http - acked) * 1000)
                    sql_ms.append((got_sql - acked) * 1000)
                    sse_ms.append((got_sse - acked) * 1000)
                    await asyncio.sleep(args.freshness_gap_ms / 1000)
            finally:
                sse_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sse_task
    except TimeoutError:
        raise BenchError("freshness: a snapshot did not appear within 10 s") from None
    finally:
        await raw.close()
        await conn.close()
        await stream.close()
    print(
        f"freshness: /latest p50 {percentile(http_ms, 50):.1f} ms, SSE p50"
        f" {percentile(sse_ms, 50):.1f} ms, vps_latest p50 {percentile(sql_ms, 50):.1f} ms",
        flush=True,
    )
    note = f"poll every {args.poll_ms:g} ms, idle server; < 0: seen before the ack"
    return [
        Figure(
            "freshness",
            "ack -> /metrics/latest",
            "ms",
            http_ms,
            "SELECT vps_latest poll",
            sql_ms,
            note=note,
        ),
        Figure("freshness", "ack -> SSE event", "ms", sse_ms, "SELECT vps_latest poll", sql_ms),
    ]


async def phase_queries(setup: Setup, http_port: int, args: argparse.Namespace) -> list[Figure]:
    raw = RawHttp(http_port, setup.api_token)
    conn = await asyncpg.connect(setup.dsn)
    cols = ", ".join(METRIC_COLUMNS)
    latest_sql = f"SELECT {cols} FROM vps_latest WHERE vps_id = $1"
    rnd = random.Random(11)
    cases = [("1h", "1m"), ("24h", "auto"), ("30d", "auto")]
    spans = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "30d": timedelta(days=30)}
    http: dict[str, list[float]] = {}
    sql: dict[str, list[float]] = {}

    def add(store: dict[str, list[float]], key: str, began: float) -> None:
        store.setdefault(key, []).append((time.perf_counter() - began) * 1000)

    try:
        for _ in range(args.repeats):
            for _ in range(args.query_requests):
                vps_id = rnd.choice(setup.history)
                began = time.perf_counter()
                status, _ = await raw.get("/api/health")
                add(http, "health", began)
                began = time.perf_counter()
                status, _ = await raw.get(f"/api/vps/{vps_id}/metrics/latest")
                add(http, "latest", began)
                if status != 200:
                    raise BenchError(f"/metrics/latest of VPS {vps_id}: HTTP {status}")
                began = time.perf_counter()
                await conn.fetchrow(latest_sql, vps_id)
                add(sql, "latest", began)
                for span, interval in cases:
                    key = f"{span}/{interval}"
                    end = datetime.now(UTC)
                    start = end - spans[span]
                    query = httpx.QueryParams(
                        start_time=start.isoformat(), end_time=end.isoformat(), interval=interval
                    )
                    began = time.perf_counter()
                    status, _ = await raw.get(f"/api/vps/{vps_id}/metrics/timeseries?{query}")
                    add(http, key, began)
                    if status != 200:
                        raise BenchError(f"timeseries {key} of VPS {vps_id}: HTTP {status}")
                    began = time.perf_counter()
                    await fetch_timeseries(conn, vps_id, plan_timeseries(interval, start, end))
                    add(sql, key, began)
    finally:
        await raw.close()
        await conn.close()
    size = f"{len(setup.history)} VPSes x {args.history_days} d"
    figures = [
        Figure("queries", "reference: GET /api/health round trip", "ms", http["health"], "-", []),
        Figure(
            "queries",
            "/metrics/latest round trip",
            "ms",
            http["latest"],
            "asyncpg SELECT vps_latest by id",
            sql["latest"],
        ),
    ]
    for span, interval in cases:
        key = f"{span}/{interval}"
        figures.append(
            Figure(
                "queries",
                f"/metrics/timeseries {span} interval={interval} round trip",
                "ms",
                http[key],
                "asyncpg fetch_timeseries()",
                sql[key],
                note=size if span == "1h" else "",
            )
        )
    for fig in figures[1:]:
        print(
            f"{fig.metric}: p50 {percentile(fig.values, 50):.2f} ms p99"
            f" {percentile(fig.values, 99):.2f} ms (SQL p50 {percentile(fig.baseline, 50):.2f})",
            flush=True,
        )
    return figures


@dataclass
class Footprint:
    cpu: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    cpu_mean: float = math.nan


def _cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for member in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def _sample(proc: psutil.Process, into: Footprint) -> None:
    family = [proc, *proc.children(recursive=True)]
    cpu = 0.0
    rss = 0
    for member in family:
        with contextlib.suppress(psutil.Error):
            cpu += member.cpu_percent(None)
            rss += member.memory_info().rss
    into.cpu.append(cpu)
    into.rss_mb.append(rss / 2**20)


async def phase_footprint(
    setup: Setup, children: Children, address: str, args: argparse.Namespace, reports: Path
) -> tuple[list[Figure], str]:
    vps_id, token = setup.footprint
    config = setup.work / "agent.toml"
    spool = setup.work / "agent-spool"
    config.write_text(
        f'server = "{address}"\ntoken = "{token}"\nspool_dir = "{spool}"\n'
        "metrics_collect_interval_seconds = 1\nmetrics_upload_interval_seconds = 1\n"
    )
    config.chmod(0o600)
    env = {k: v for k, v in setup.env.items() if not k.startswith("VPSMON_AGENT_")}
    exporter_bin = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    why_not = "" if exporter_bin else "prometheus-node-exporter is not installed"
    if exporter_bin is None and args.install_node_exporter:
        why_not = _install_node_exporter()
        exporter_bin = shutil.which("prometheus-node-exporter")
    with (
        (reports / "agent.log").open("wb") as agent_log,
        (reports / "node-exporter.log").open("wb") as ne_log,
    ):
        agent = children.spawn(
            "agent", [_bin("vpsmon"), "agent", "--config", str(config)], env, agent_log
        )
        exporter = None
        ne_port = free_port()
        if exporter_bin is not None:
            exporter = children.spawn(
                "node_exporter",
                [exporter_bin, f"--web.listen-address={HOST}:{ne_port}"],
                dict(os.environ),
                ne_log,
            )
        mine, theirs = Footprint(), Footprint()
        scrapes: list[float] = []
        try:
            if exporter is not None:
                await wait_for_port(
                    exporter, ne_port, "node_exporter", reports / "node-exporter.log"
                )
            agent_ps = psutil.Process(agent.pid)
            exporter_ps = psutil.Process(exporter.pid) if exporter is not None else None
            warmup = 5 if args.agent_seconds >= 20 else 2
            _sample(agent_ps, Footprint())
            if exporter_ps is not None:
                _sample(exporter_ps, Footprint())
            print(
                f"agent footprint: {args.agent_seconds} s (+{warmup} s warm-up), node_exporter"
                f" {'on :' + str(ne_port) if exporter else 'n/a'}",
                flush=True,
            )
            window: dict[str, float] = {}
            async with httpx.AsyncClient(timeout=5) as client:
                next_tick = time.monotonic()
                for second in range(warmup + args.agent_seconds):
                    if exporter is not None:
                        began = time.perf_counter()
                        reply = await client.get(f"http://{HOST}:{ne_port}/metrics")
                        scrapes.append((time.perf_counter() - began) * 1000)
                        if reply.status_code != 200:
                            raise BenchError(f"node_exporter scrape: HTTP {reply.status_code}")
                    next_tick += 1.0
                    await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
                    if agent.poll() is not None:
                        raise BenchError(f"the agent exited with {agent.returncode}")
                    if second == warmup - 1:
                        window["start"] = time.monotonic()
                        window["agent"] = _cpu_seconds(agent_ps)
                        if exporter_ps is not None:
                            window["exporter"] = _cpu_seconds(exporter_ps)
                    target = mine if second >= warmup else Footprint()
                    _sample(agent_ps, target)
                    if exporter_ps is not None:
                        _sample(exporter_ps, theirs if second >= warmup else Footprint())
            span = time.monotonic() - window["start"]
            mine.cpu_seconds = _cpu_seconds(agent_ps) - window["agent"]
            mine.cpu_mean = 100 * mine.cpu_seconds / span
            if exporter_ps is not None:
                theirs.cpu_seconds = _cpu_seconds(exporter_ps) - window["exporter"]
                theirs.cpu_mean = 100 * theirs.cpu_seconds / span
            rows = await _count_rows(setup.dsn, vps_id)
        finally:
            children.stop(agent)
            if exporter is not None:
                children.stop(exporter)
    print(
        f"agent: cpu p50 {percentile(mine.cpu, 50):.2f} %, rss p50"
        f" {percentile(mine.rss_mb, 50):.1f} MB, {rows} rows stored",
        flush=True,
    )
    base_name = "node_exporter, scraped 1/s" if exporter else f"node_exporter n/a ({why_not})"
    return [
        Figure(
            "agent",
            "CPU, % of one core, per 1 s sample (1 % ticks)",
            "%",
            mine.cpu,
            base_name,
            theirs.cpu,
        ),
        Figure(
            "agent",
            "CPU, % of one core, CPU time / wall time over the window",
            "%",
            [mine.cpu_mean],
            base_name,
            [theirs.cpu_mean] if exporter else [],
            note="one value: exact mean",
        ),
        Figure("agent", "RSS", "MB", mine.rss_mb, base_name, theirs.rss_mb),
    ], why_not


def _install_node_exporter() -> str:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "prometheus-node-exporter is missing and apt-get is not usable here"
    print("installing prometheus-node-exporter with apt-get", flush=True)
    done = subprocess.run(
        ["apt-get", "install", "-y", "prometheus-node-exporter"],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return f"apt-get install failed: {done.stderr.strip()[-200:]}"
    return ""


async def _count_rows(dsn: str, vps_id: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM performance_metrics WHERE vps_id = $1", vps_id
        )
        return count
    finally:
        await conn.close()


# --------------------------------------------------------------------------- driver


@contextlib.asynccontextmanager
async def command_side(
    children: Children, setup: Setup, reports: Path
) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    log_path = reports / "bench-command-side.log"
    with log_path.open("wb") as log:
        proc = children.spawn(
            "command side",
            [_bin("vpsmon"), "command-side"],
            {**setup.env, "VPSMON_GRPC_LISTEN": f"{HOST}:{port}"},
            log,
        )
        try:
            await wait_for_port(proc, port, "command side", log_path)
            yield f"{HOST}:{port}", proc.pid
        finally:
            children.stop(proc)


@contextlib.asynccontextmanager
async def query_side(children: Children, setup: Setup, reports: Path) -> AsyncIterator[int]:
    port = free_port()
    log_path = reports / "bench-query-side.log"
    with log_path.open("wb") as log:
        proc = children.spawn(
            "query side",
            [_bin("vpsmon"), "query-side", "--workers", "2"],
            {**setup.env, "VPSMON_HTTP_LISTEN": f"{HOST}:{port}"},
            log,
        )
        try:
            await wait_for_query_side(proc, port, log_path, 2)
            yield port
        finally:
            children.stop(proc)


async def run_phases(
    dsn: str, env: dict[str, str], work: Path, args: argparse.Namespace, children: Children
) -> tuple[list[Figure], dict[str, Any]]:
    reports: Path = args.report.resolve().parent
    setup = await prepare(dsn, env, work, args)
    await seed_history(setup, args.history_days)
    figures: list[Figure] = []
    extra: dict[str, Any] = {"setup_timings_s": setup.timings, "history_rows": setup.history_rows}
    async with command_side(children, setup, reports) as (address, cs_pid):
        print(f"command side on {address} (pid {cs_pid})", flush=True)
        figures += await phase_ingest(setup, address, args, cs_pid)
        async with query_side(children, setup, reports) as http_port:
            print(f"query side on {HOST}:{http_port}", flush=True)
            figures += await phase_freshness(setup, address, http_port, args)
            figures += await phase_queries(setup, http_port, args)
        footprint, why_not = await phase_footprint(setup, children, address, args, reports)
        figures += footprint
        extra["node_exporter"] = why_not or "measured"
    return figures, extra


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [_bin("vpsmon"), "migrate"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"vpsmon migrate failed: {done.stderr.strip()[-2000:]}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Benchmark vpsmon against same-run baselines on this machine.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="short phases (a few minutes in all)")
    p.add_argument(
        "--repeats", type=int, default=None, help="repeats per phase (default 5, quick 3)"
    )
    p.add_argument("--agents", type=int, default=100, help="simulated gRPC agents (one VPS each)")
    p.add_argument("--batch-size", type=int, default=100, help="snapshots per batch")
    p.add_argument("--in-flight", type=int, default=3, help="batches in flight per agent")
    p.add_argument("--ingest-seconds", type=float, default=None, help="per repeat (20, quick 5)")
    p.add_argument(
        "--rate",
        type=float,
        default=30_000.0,
        help="open-loop phase: snapshots/s offered in all (0: skip it)",
    )
    p.add_argument("--copy-chunk", type=int, default=10_000, help="rows per baseline COPY")
    p.add_argument("--latency-samples", type=int, default=100, help="baseline one-batch COPYs")
    p.add_argument("--history-vps", type=int, default=100, help="VPSes with history")
    p.add_argument("--history-days", type=int, default=30, help="days of history, 1 row/min")
    p.add_argument("--freshness-samples", type=int, default=None, help="per repeat (20, quick 8)")
    p.add_argument("--freshness-gap-ms", type=float, default=150.0, help="pause between samples")
    p.add_argument("--poll-ms", type=float, default=2.0, help="freshness poll interval")
    p.add_argument("--query-requests", type=int, default=None, help="per repeat (200, quick 50)")
    p.add_argument(
        "--agent-seconds", type=int, default=None, help="footprint window (60, quick 15)"
    )
    p.add_argument(
        "--no-install-node-exporter",
        dest="install_node_exporter",
        action="store_false",
        help="do not apt-get install prometheus-node-exporter when missing",
    )
    p.add_argument("--profile", type=Path, default=None, help="py-spy raw profile of ingest")
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="JSON output")
    return p


def _defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    args.repeats = args.repeats or (3 if quick else 5)
    args.ingest_seconds = args.ingest_seconds or (5.0 if quick else 20.0)
    args.freshness_samples = args.freshness_samples or (8 if quick else 20)
    args.query_requests = args.query_requests or (50 if quick else 200)
    args.agent_seconds = args.agent_seconds or (15 if quick else 60)
    if quick and args.latency_samples == 100:
        args.latency_samples = 30
    for name in ("repeats", "agents", "batch_size", "in_flight", "history_vps", "history_days"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be at least 1")
    if args.agents > 2000:
        raise BenchError("--agents must be at most 2000")


def run(args: argparse.Namespace, work: Path, children: Children) -> int:
    began = time.monotonic()
    args.report.resolve().parent.mkdir(parents=True, exist_ok=True)
    with database(work) as dsn:
        env = {**os.environ, "VPSMON_DATABASE_URL": dsn}
        for key in ("VPSMON_GRPC_TLS_CERT", "VPSMON_GRPC_TLS_KEY"):
            env.pop(key, None)
        _migrate(env)
        try:
            figures, extra = asyncio.run(run_phases(dsn, env, work, args, children))
        finally:
            children.stop_all()
    table = render_table(figures)
    machine = {
        "nproc": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": _cpu_model(),
    }
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report = {
        "machine": machine,
        "parameters": params,
        "wall_seconds": round(time.monotonic() - began, 1),
        **extra,
        "figures": [f.summary() for f in figures],
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(
        f"== vpsmon benchmark: {machine['nproc']} CPUs, {machine['memory_gb']} GB,"
        f" {machine['cpu']}; {args.repeats} repeats; median and p99 ==",
    )
    print(table)
    print(f"\nraw numbers: {args.report}  (wall time {report['wall_seconds']} s)")
    return 0


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    signal.signal(signal.SIGTERM, on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="vpsmon-bench-", dir="/tmp"))
    children = Children()
    try:
        _defaults(args)
        return run(args, work, children)
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("interrupted; everything stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        children.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
