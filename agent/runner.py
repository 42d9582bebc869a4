"""``vpsmon agent``: wires collector -> batcher -> spool -> client.

Imports nothing from the server side (no asyncpg, sanic, pydantic): an
agent-only install must be able to run this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Protocol

from agent.batcher import Batcher
from agent.client import AgentClient
from agent.config import DEFAULT_CONFIG_PATH, AgentSettings, load_settings
from agent.spool import SnapshotSpool
from agent.stats import AgentStats
from proto.vpsmon.v1 import agent_pb2
from vpsmon.errors import ConfigError

log = logging.getLogger(__name__)

# How long a stopping agent keeps trying to deliver its spool (across a reconnect).
SHUTDOWN_GRACE_S = 5.0
# Batches kept in memory while the spool cannot be written (disk full, read-only).
_MAX_UNSPOOLED = 600


class SnapshotSource(Protocol):
    def sample(
        self, *, wall_time_ms: int | None = None, monotonic_s: float | None = None
    ) -> agent_pb2.PerformanceSnapshot | None: ...


def _default_collector(settings: AgentSettings) -> SnapshotSource:
    from agent.collector import MetricsCollector

    return MetricsCollector(
        procfs=settings.procfs_path,
        sysfs=settings.sysfs_path,
        include_interfaces=settings.include_interfaces,
        exclude_interfaces=settings.exclude_interfaces,
    )


class _Pipeline:
    """Moves closed batches into the spool; holds them in memory (bounded) if
    the disk refuses, so a transient disk problem loses nothing."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self.unspooled: deque[agent_pb2.PerformanceSnapshotBatch] = deque()

    def submit(self, batches: list[agent_pb2.PerformanceSnapshotBatch]) -> None:
        self.unspooled.extend(batches)
        while self.unspooled:
            try:
                self.client.submit(self.unspooled[0])
            except OSError as error:
                log.error("cannot write to the spool: %s", error)
                while len(self.unspooled) > _MAX_UNSPOOLED:
                    self.unspooled.popleft()
                    self.client.stats.batches_lost += 1
                    log.error("dropped a batch that could not be spooled")
                return
            self.unspooled.popleft()


async def _sample_loop(
    collector: SnapshotSource,
    batcher: Batcher,
    pipeline: _Pipeline,
    stop: asyncio.Event,
    wake: asyncio.Event,
) -> None:
    """Sample on a fixed monotonic grid: no drift, and missed ticks (a stalled
    host, a suspended VM) are skipped rather than sampled in a burst."""
    interval = batcher.collect_interval_seconds
    next_tick = time.monotonic()
    failures = 0
    stats = pipeline.client.stats
    while not stop.is_set():
        now = time.monotonic()
        if batcher.collect_interval_seconds != interval:  # changed live by the server
            next_tick = min(next_tick, now + batcher.collect_interval_seconds)
            interval = batcher.collect_interval_seconds
        if now >= next_tick:
            try:
                snapshot = collector.sample(monotonic_s=now)
                failures = 0
            except Exception:
                failures += 1
                stats.sampling_failures += 1
                if failures == 1 or failures % 60 == 0:
                    log.exception("sampling failed (%d time(s) in a row)", failures)
                snapshot = None
            if snapshot is not None:
                pipeline.submit(batcher.add(snapshot, now))
            next_tick += interval
            if next_tick <= now:
                skipped = math.floor((now - next_tick) / interval) + 1
                next_tick += skipped * interval
                stats.ticks_skipped += skipped
                log.warning("sampling fell behind: skipped %d tick(s)", skipped)
        pipeline.submit(batcher.poll(time.monotonic()))
        wake_at = min(next_tick, batcher.deadline() or math.inf)
        wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(wake_at - time.monotonic(), 0.0)):
                await wake.wait()


async def run_agent(
    config: AgentSettings,
    stop: asyncio.Event,
    *,
    collector: SnapshotSource | None = None,
    shutdown_grace_s: float = SHUTDOWN_GRACE_S,
) -> None:
    """Run until ``stop`` is set; everything collected is spooled before return."""
    stats = AgentStats()
    spool = SnapshotSpool(config.spool_dir, config.max_spool_batches, stats=stats)
    batcher = Batcher(
        collect_interval_seconds=config.metrics_collect_interval_seconds,
        upload_interval_seconds=config.metrics_upload_interval_seconds,
        batch_max_size=config.metrics_upload_batch_max_size,
    )
    wake = asyncio.Event()

    def on_config(server_config: agent_pb2.AgentConfig) -> None:
        if batcher.apply_config(server_config):
            wake.set()  # re-plan the next tick with the new interval now

    client = AgentClient(
        config.server,
        config.token,
        spool,
        on_config=on_config,
        tls=config.tls,
        ca_file=config.ca_file,
        stats=stats,
    )
    pipeline = _Pipeline(client)
    source = collector if collector is not None else _default_collector(config)
    log.info("vpsmon agent starting: server %s, spool %s", config.server, config.spool_dir)

    async def relay_stop() -> None:
        await stop.wait()
        wake.set()

    client_task = asyncio.create_task(client.run(), name="vpsmon-agent-client")
    relay = asyncio.create_task(relay_stop())
    try:
        await _sample_loop(source, batcher, pipeline, stop, wake)
        pipeline.submit(batcher.flush())  # keep the partial batch for the next start
        if pipeline.unspooled:
            log.error("%d batch(es) could not be spooled and are lost", len(pipeline.unspooled))
        if len(spool):
            await client.wait_drained(shutdown_grace_s)
    finally:
        for task in (relay, client_task):
            task.cancel()
        await asyncio.gather(relay, client_task, return_exceptions=True)
    log.info("vpsmon agent stopped; %d batch(es) left in the spool", len(spool))


async def _serve(settings: AgentSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal kills at once
            loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    await run_agent(settings, stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``vpsmon agent [--config PATH]``."""
    parser = argparse.ArgumentParser(
        prog="vpsmon agent", description="Collect host metrics and stream them to vpsmon."
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("VPSMON_AGENT_CONFIG"),
        help=f"TOML config file (default: {DEFAULT_CONFIG_PATH} if it exists; "
        "VPSMON_AGENT_* variables override its keys)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    path: Path | None = args.config
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    try:
        settings = load_settings(path)
        return asyncio.run(_serve(settings))
    except ConfigError as error:
        print(f"vpsmon agent: configuration error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"vpsmon agent: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
