"""Agent footprint phase of loadtests/benchmark.py: `vpsmon agent` at 1 s
beside prometheus-node-exporter scraped once a second."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
from bench_common import (
    HOST,
    BenchError,
    Children,
    Figure,
    Setup,
    find_bin,
    percentile,
    wait_for_port,
)

from tests.support.processes import free_port


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
            "agent", [find_bin("vpsmon"), "agent", "--config", str(config)], env, agent_log
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
