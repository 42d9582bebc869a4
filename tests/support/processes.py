"""Real processes for the tests: vpsmon commands (start, stop gracefully, kill -9), an
embedded cluster in a process of its own, and free ports to give them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await port_open(port):
        if time.monotonic() > deadline:
            raise OSError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")
        await asyncio.sleep(0.02)


async def query_side_ready(client: httpx.AsyncClient, log: str, workers: int) -> bool:
    """A query side answers /api/health and all its ``workers`` are up (their
    "Worker ready" lines in its ``log``): Sanic cannot stop while one is starting."""
    try:
        healthy = (await client.get("/api/health")).status_code == 200
    except httpx.TransportError:
        healthy = False
    return healthy and log.count("Worker ready") >= workers


_started: list[VpsmonProcess] = []


def kill_leftovers() -> None:
    """Kill every process a test started and did not stop (e.g. after a failure)."""
    while _started:
        process = _started.pop().process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # with any workers it spawned


class VpsmonProcess:
    """`python -m vpsmon.cli ARGS` with its output captured to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = {**os.environ, **env}
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "vpsmon.cli",
                *self.args,
                env=self.env,
                cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        _started.append(self)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def kill(self) -> None:
        """kill -9: no cleanup of any kind."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class CommandSideProcess(VpsmonProcess):
    def __init__(self, dsn: str, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        super().__init__(
            ["command-side"],
            {
                "VPSMON_DATABASE_URL": dsn,
                "VPSMON_BACKEND": "postgresql",
                "VPSMON_GRPC_LISTEN": self.address,
                # The synthetic agents send snapshots 1 ms apart: no per-VPS budget.
                "VPSMON_INGEST_BUDGET_HEADROOM": "1000000000",
            },
            log,
        )

    async def start(self) -> None:
        await super().start()
        try:
            await wait_for_port(self.port)
        except OSError:
            raise AssertionError(f"command side did not start:\n{self.output()}") from None


class ClusterProcess:
    """The embedded cluster run by a process of its own.

    Starting PostgreSQL forks, and forking this test process while it runs
    gRPC clients can crash the child, so another process owns the cluster.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> str:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vpsmon.storage.embedded",
            str(self.data_dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        return line.decode().strip()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            await asyncio.wait_for(self.process.wait(), 60)


def run_loadtest(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``loadtests/SCRIPT ARGS`` to the end; fails unless it exits 0.

    Without any VPSMON_ setting, so on its own path: a throwaway embedded
    cluster, never the developer's database.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPSMON_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result
