"""vpsmon benchmark: every target of docs/BENCHMARKS.md beside a baseline measured in the same run.

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

This file parses the options and runs the phases in order; the phases live in
sibling modules (imported as top-level modules: run as a script, this
directory is on sys.path): bench_common (errors, statistics, the table, child
processes, the embedded database, a raw HTTP client), bench_ingest,
bench_freshness, bench_queries (with the history seeding) and bench_agent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from bench_agent import phase_footprint
from bench_common import (
    DEFAULT_REPORT,
    HOST,
    UNLIMITED_BUDGET_ENV,
    BenchError,
    Children,
    Figure,
    Setup,
    database,
    find_bin,
    render_table,
    run_command,
    run_vpsmon,
    wait_for_port,
    wait_for_query_side,
)
from bench_freshness import phase_freshness
from bench_greedy import phase_greedy
from bench_ingest import phase_ingest
from bench_queries import phase_queries, seed_history

from command_side.vps_commands import register_vps
from query_side.accounts import create_api_token, create_user
from tests.support.processes import free_port


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
        greedy = await vps("greedy")
        history = [(await vps(f"hist-{i:04d}"))[0] for i in range(args.history_vps)]
    finally:
        await conn.close()
    return Setup(dsn, env, work, api_token, ingest, fresh, footprint, greedy, history)


@contextlib.asynccontextmanager
async def command_side(
    children: Children, setup: Setup, reports: Path, log_name: str = "bench-command-side.log"
) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    log_path = reports / log_name
    with log_path.open("wb") as log:
        proc = children.spawn(
            "command side",
            [find_bin("vpsmon"), "command-side"],
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
            [find_bin("vpsmon"), "query-side", "--workers", "2"],
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
        # Last of the load phases: the greedy agent's millions of late rows keep
        # the rollup refresh busy for a while, which would slow the queries.
        # It needs the per-VPS budget as an operator runs it.
        budgeted = {k: v for k, v in setup.env.items() if k not in UNLIMITED_BUDGET_ENV}
        async with command_side(
            children, replace(setup, env=budgeted), reports, "bench-command-side-budget.log"
        ) as (budget_address, _):
            figures += await phase_greedy(setup, budget_address, address, args)
        footprint, why_not = await phase_footprint(setup, children, address, args, reports)
        figures += footprint
        extra["node_exporter"] = why_not or "measured"
    return figures, extra


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
    p.add_argument(
        "--greedy-seconds", type=float, default=None, help="per greedy round (10, quick 4)"
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
    args.greedy_seconds = args.greedy_seconds or (4.0 if quick else 10.0)
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
        env = {**os.environ, "VPSMON_DATABASE_URL": dsn, **UNLIMITED_BUDGET_ENV}
        for key in ("VPSMON_GRPC_TLS_CERT", "VPSMON_GRPC_TLS_KEY"):
            env.pop(key, None)
        run_vpsmon(["migrate"], env)
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
    children = Children()

    def body(work: Path) -> int:
        _defaults(args)
        return run(args, work, children)

    return run_command("vpsmon-bench-", body, children.stop_all)


if __name__ == "__main__":
    sys.exit(main())
