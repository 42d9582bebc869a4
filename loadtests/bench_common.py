"""Shared parts of loadtests/benchmark.py (some also used by run_ingest_load.py):
errors, statistics, the results table, child processes (started, waited for,
always stopped), the embedded database and a minimal HTTP client. Free ports
and the readiness probes of a port and a query side are the test suite's
(tests/support/processes.py), as is the synthetic agent."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import asyncpg
import httpx

from tests.support.processes import port_open, query_side_ready
from tests.support.synthetic_agent import StreamEnded
from vpsmon.storage.dsn import with_database
from vpsmon.storage.embedded import EmbeddedPostgres

HERE = Path(__file__).resolve().parent


ROOT = HERE.parent


DEFAULT_REPORT = HERE / "reports" / "benchmark.json"


HOST = "127.0.0.1"


STARTUP_TIMEOUT = 90.0

# Synthetic agents send snapshots 1 ms apart, far beyond what a real agent's
# sampling interval allows; the throughput phases lift the per-VPS ingest
# budget (command_side/budget.py) so that they measure the pipeline, not it.
UNLIMITED_BUDGET_ENV = {"VPSMON_INGEST_BUDGET_HEADROOM": "1000000000"}


STOP_TIMEOUT = 30.0


TABLE_HEADER = "| phase | metric | vpsmon median | vpsmon p99 | baseline | baseline median"


class BenchError(RuntimeError):
    """A failure reported as one line."""


class Interrupted(BaseException):
    """SIGTERM, handled like Ctrl-C."""


def run_command(
    work_prefix: str, body: Callable[[Path], int], cleanup: Callable[[], None] | None = None
) -> int:
    """The frame of a load-test command: SIGTERM handled like Ctrl-C, a throwaway
    work directory for ``body`` (under /tmp, not /root: pgserver run as root opens
    up the data dir's parents), one FAILED line for a BenchError or a synthetic
    agent's stream that ended, exit status 130 when interrupted. ``cleanup`` (with
    Ctrl-C ignored: it is bounded) and the directory's removal always run."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    signal.signal(signal.SIGTERM, on_sigterm)
    work = Path(tempfile.mkdtemp(prefix=work_prefix, dir="/tmp"))
    try:
        return body(work)
    except (BenchError, StreamEnded) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print("interrupted; everything stopped", file=sys.stderr)
        return 130
    finally:
        if cleanup is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            cleanup()
        shutil.rmtree(work, ignore_errors=True)


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


def find_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def die_with_parent() -> None:
    """Children get SIGTERM if this process dies without cleaning up (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


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
            preexec_fn=die_with_parent,
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


async def wait_for_port(
    proc: subprocess.Popen[bytes],
    port: int,
    name: str,
    log: Path,
    timeout: float = STARTUP_TIMEOUT,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log_tail(log)
            raise BenchError(f"{name} exited with {proc.returncode}:\n{tail}")
        if await port_open(port):
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{name} not listening after {timeout:g} s")
        await asyncio.sleep(0.05)


def run_vpsmon(args: list[str], env: dict[str, str], timeout: float = STARTUP_TIMEOUT) -> str:
    """`vpsmon ARGS` to the end: its standard output, or a BenchError with the end of
    its standard error."""
    done = subprocess.run(
        [find_bin("vpsmon"), *args],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"vpsmon {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def log_tail(path: Path, size: int = 2000) -> str:
    return path.read_text(errors="replace")[-size:]


@contextlib.contextmanager
def database(work: Path, name: str = "vpsmon_bench") -> Iterator[str]:
    """VPSMON_DATABASE_URL, or database `name` in a fresh embedded cluster in `work`."""
    if url := os.environ.get("VPSMON_DATABASE_URL"):
        yield url
        return
    server = EmbeddedPostgres(work / "pg18")
    print(f"starting embedded PostgreSQL in {server.data_dir}", flush=True)
    server_dsn = server.start()
    try:
        asyncio.run(_execute(server_dsn, f'CREATE DATABASE "{name}"'))
        yield with_database(server_dsn, name)
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
    greedy: tuple[int, str]
    history: list[int]
    history_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)


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
                tail = log_tail(log)
                raise BenchError(f"query side exited with {proc.returncode}:\n{tail}")
            if await query_side_ready(client, log_tail(log, 1 << 20), workers):
                return
            if time.monotonic() > deadline:
                raise BenchError(f"query side not ready after {STARTUP_TIMEOUT:g} s")
            await asyncio.sleep(0.1)
