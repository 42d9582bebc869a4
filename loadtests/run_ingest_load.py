"""Ingest load test, start to finish, in one bounded command.

    .venv/bin/python loadtests/run_ingest_load.py --users 20 --batch-size 100 --run-time 30s

1. A database: VPSMON_DATABASE_URL if set, else an embedded PostgreSQL in a
   throwaway directory under /tmp (stopped and deleted at the end).
2. `vpsmon command-side` on a free 127.0.0.1 port (log: reports/command-side.log).
3. One VPS per locust user (`vpsmon vps add --json`); their tokens go to a
   private file in the throwaway directory.
4. locust, headless, for the run time (CSV and HTML reports in reports/).
5. The command side is stopped with SIGTERM (it commits and acks what it
   has read), then the figures are printed and the rows counted: the rows
   of the test's VPSes in performance_metrics must equal the snapshots the
   server acked as accepted, with no (vps_id, time) twice.

Exit status 0 only if locust saw no failure and the counts match. Every
process started here is stopped on the way out, also on error, Ctrl-C or
SIGTERM. Load only ever goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg
from bench_common import (
    HOST,
    UNLIMITED_BUDGET_ENV,
    BenchError,
    database,
    die_with_parent,
    find_bin,
    run_command,
    run_vpsmon,
    wait_for_port,
)

from tests.support.processes import free_port

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
DEFAULT_REPORTS = HERE / "reports"
REPORT_PREFIX = "ingest"

MAX_RUN_SECONDS = 600
MAX_USERS = 1000
STOP_TIMEOUT_SECONDS = 10  # locust lets a user finish the batch it is waiting on
STARTUP_TIMEOUT_SECONDS = 60.0
SHUTDOWN_TIMEOUT_SECONDS = 30.0
REGISTER_PARALLELISM = 4


def parse_run_time(text: str) -> int:
    """locust's formats: 30, 30s, 2m, 1m30s, 1h."""
    text = text.strip().lower()
    if text.isdigit():
        seconds = int(text)
    else:
        match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
        if not match or not any(match.groups()):
            raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 2m, 1m30s)")
        h, m, s = (int(g or 0) for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if not 1 <= seconds <= MAX_RUN_SECONDS:
        raise argparse.ArgumentTypeError(f"run time must be 1 s to {MAX_RUN_SECONDS} s")
    return seconds


def _bounded(convert: Callable[[str], float], low: float, high: float) -> Any:
    """An argparse type: ``convert`` (int or float), then a check of the range."""

    def parse(text: str) -> float:
        value = convert(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low:g} to {high:g}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run the gRPC ingest load test against a throwaway local command side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--users", type=_bounded(int, 1, MAX_USERS), default=20, help="agents (one VPS each)"
    )
    parser.add_argument(
        "--batch-size", type=_bounded(int, 1, 100_000), default=100, help="snapshots per batch"
    )
    parser.add_argument(
        "--run-time", type=parse_run_time, default=30, help=f"e.g. 30s, 2m (max {MAX_RUN_SECONDS}s)"
    )
    parser.add_argument(
        "--spawn-rate",
        type=_bounded(float, 0.01, 10_000),
        default=None,
        help="users started per second (default: all at once)",
    )
    parser.add_argument(
        "--wait",
        type=_bounded(float, 0, 3600),
        default=0.0,
        help="seconds each agent waits between batches",
    )
    parser.add_argument(
        "--reports", type=Path, default=DEFAULT_REPORTS, help="directory for the reports"
    )
    return parser


def _spawn(
    args: list[str], env: dict[str, str], stdout: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    # Own session: Ctrl-C reaches only this script, which stops the children in order.
    return subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def _stop(proc: subprocess.Popen[bytes] | None, name: str, sig: int = signal.SIGTERM) -> int | None:
    """Signal, wait, then kill; returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(SHUTDOWN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in {SHUTDOWN_TIMEOUT_SECONDS:g} s; killing it", flush=True)
            proc.kill()
            proc.wait()
    return proc.returncode


def register_vpses(count: int, env: dict[str, str]) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:8]

    def add(index: int) -> dict[str, Any]:
        name = f"load-{run}-{index:04d}"
        out = run_vpsmon(["vps", "add", name, "--json"], env, STARTUP_TIMEOUT_SECONDS)
        issued: dict[str, Any] = json.loads(out)
        return issued

    with ThreadPoolExecutor(REGISTER_PARALLELISM) as pool:
        return list(pool.map(add, range(count)))


@dataclass(frozen=True)
class AckStats:
    batches: int
    failures: int
    p50: int
    p95: int
    p99: int
    max: int
    batches_per_second: float
    snapshots_per_second: float
    snapshots_accepted: int  # as locust summed the response lengths


def read_ack_stats(path: Path) -> AckStats:
    if not path.exists():
        raise BenchError(f"locust wrote no final statistics ({path})")
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            if row["Type"] == "grpc" and row["Name"] == "batch_ack":
                break
        else:
            raise BenchError(f"{path}: no batch was acked")
    batches = int(row["Request Count"])
    content = float(row["Average Content Size"])
    rps = float(row["Requests/s"])
    return AckStats(
        batches=batches,
        failures=int(row["Failure Count"]),
        p50=int(row["50%"]),
        p95=int(row["95%"]),
        p99=int(row["99%"]),
        max=int(row["100%"]),
        batches_per_second=rps,
        snapshots_per_second=rps * content,
        snapshots_accepted=round(batches * content),
    )


async def count_rows(dsn: str, vps_ids: list[int]) -> tuple[int, int]:
    """(rows, distinct (vps_id, time)) of the test's VPSes."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT (vps_id, time)) AS distinct_rows"
            " FROM performance_metrics WHERE vps_id = ANY($1::int[])",
            vps_ids,
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["rows"]), int(row["distinct_rows"])


def run(args: argparse.Namespace, work: Path) -> int:
    max_batch = int(os.environ.get("VPSMON_MAX_BATCH_SNAPSHOTS", "1000"))
    if args.batch_size > max_batch:
        raise BenchError(
            f"--batch-size {args.batch_size} exceeds the server's maximum {max_batch}"
            " (VPSMON_MAX_BATCH_SNAPSHOTS)"
        )
    reports: Path = args.reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    prefix = reports / REPORT_PREFIX
    for old in reports.glob(f"{REPORT_PREFIX}*"):
        if old.is_file():
            old.unlink()
    final_csv = reports / f"{REPORT_PREFIX}_final_stats.csv"
    accounting_file = reports / f"{REPORT_PREFIX}_accounting.json"
    cs_log_path = reports / "command-side.log"
    spawn_rate = args.spawn_rate or float(args.users)

    command_side: subprocess.Popen[bytes] | None = None
    locust: subprocess.Popen[bytes] | None = None
    embedded = not os.environ.get("VPSMON_DATABASE_URL")  # database() starts one if unset
    with database(work, "vpsmon_load") as dsn, cs_log_path.open("wb") as cs_log:
        try:
            env = {**os.environ, "VPSMON_DATABASE_URL": dsn, **UNLIMITED_BUDGET_ENV}
            env.pop("VPSMON_GRPC_TLS_CERT", None)
            env.pop("VPSMON_GRPC_TLS_KEY", None)
            port = free_port()
            print(f"starting vpsmon command-side on {HOST}:{port}", flush=True)
            command_side = _spawn(
                [find_bin("vpsmon"), "command-side"],
                {**env, "VPSMON_GRPC_LISTEN": f"{HOST}:{port}"},
                stdout=cs_log,
            )
            asyncio.run(
                wait_for_port(
                    command_side, port, "command side", cs_log_path, STARTUP_TIMEOUT_SECONDS
                )
            )

            print(f"registering {args.users} VPSes", flush=True)
            vpses = register_vpses(args.users, env)
            tokens_file = work / "tokens.json"
            tokens_file.touch(mode=0o600)
            tokens_file.write_text(json.dumps([v["agent_token"] for v in vpses]))

            locust_args = [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(LOCUSTFILE),
                "--headless",
                "--users",
                str(args.users),
                "--spawn-rate",
                f"{spawn_rate:g}",
                "--run-time",
                f"{args.run_time}s",
                "--stop-timeout",
                f"{STOP_TIMEOUT_SECONDS}s",
                "--host",
                f"grpc://{HOST}:{port}",
                "--csv",
                str(prefix),
                "--html",
                f"{prefix}.html",
                "--only-summary",
            ]
            locust_env = {
                **env,
                "VPSMON_LOAD_TOKENS": str(tokens_file),
                "VPSMON_LOAD_BATCH_SIZE": str(args.batch_size),
                "VPSMON_LOAD_WAIT_SECONDS": str(args.wait),
                "VPSMON_LOAD_ACCOUNTING": str(accounting_file),
                "VPSMON_LOAD_FINAL_CSV": str(final_csv),
            }
            print(
                f"running locust: {args.users} users, batch {args.batch_size},"
                f" {args.run_time} s, spawn rate {spawn_rate:g}/s",
                flush=True,
            )
            locust = _spawn(locust_args, locust_env)
            try:
                locust.wait(args.run_time + STOP_TIMEOUT_SECONDS + STARTUP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                print("locust overran its run time; stopping it", flush=True)
            locust_status = _stop(locust, "locust")
            locust = None

            # SIGTERM: the command side commits and acks what it has read, then exits.
            cs_status = _stop(command_side, "command side")
            command_side = None

            status = report(
                args, dsn, vpses, final_csv, accounting_file, reports, locust_status, cs_status
            )
            if not embedded:
                print(
                    f"note: the {len(vpses)} VPSes {vpses[0]['name'][:-4]}NNNN and their rows"
                    " stay in the database of VPSMON_DATABASE_URL"
                )
            return status
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup is bounded; let it finish
            _stop(locust, "locust")
            _stop(command_side, "command side")


def report(
    args: argparse.Namespace,
    dsn: str,
    vpses: list[dict[str, Any]],
    final_csv: Path,
    accounting_file: Path,
    reports: Path,
    locust_status: int | None,
    cs_status: int | None,
) -> int:
    if not accounting_file.exists():
        raise BenchError(f"locust exited with {locust_status} before the test ran (see above)")
    stats = read_ack_stats(final_csv)
    accounting: dict[str, int] = json.loads(accounting_file.read_text())
    rows, distinct = asyncio.run(count_rows(dsn, [int(v["vps_id"]) for v in vpses]))
    accepted = accounting["snapshots_accepted"]
    # Re-sent batches acked as duplicates were committed by the attempt whose ack was lost.
    expected = accepted + accounting["duplicate_snapshots"]
    unacked = accounting["unacked_snapshots"]

    print()
    print(f"== ingest load: {args.users} users, batch {args.batch_size}, {args.run_time} s ==")
    print(
        f"batches acked: {stats.batches} ({stats.failures} failed),"
        f" {stats.batches_per_second:.1f} batches/s"
    )
    print(f"snapshots/s: {stats.snapshots_per_second:.0f}")
    print(f"ack time ms: p50={stats.p50} p95={stats.p95} p99={stats.p99} max={stats.max}")
    print(
        f"snapshots: sent {accounting['snapshots_sent']}, accepted {accepted},"
        f" rejected {accounting['snapshots_rejected']},"
        f" duplicate batches {accounting['duplicate_batches']},"
        f" stream failures {accounting['stream_failures']}, unacked at stop {unacked}"
    )
    problems: list[str] = []
    if stats.snapshots_accepted != accepted:
        problems.append(f"locust counted {stats.snapshots_accepted} accepted, agents {accepted}")
    if rows == expected:
        print(f"rows == accepted: {rows} == {expected} (OK)")
    else:
        print(f"rows == accepted: {rows} != {expected} (MISMATCH)")
        if unacked and expected <= rows <= expected + unacked:
            problems.append(f"{rows - expected} rows from batches whose ack never came")
        else:
            problems.append(f"{rows} rows for {expected} accepted snapshots")
    if distinct != rows:
        problems.append(f"{rows - distinct} rows repeat a (vps_id, time)")
    if stats.batches == 0:
        problems.append("no batch was acked")
    if locust_status != 0:
        problems.append(f"locust exited with {locust_status} (failures: see above)")
    if cs_status not in (0, None):
        problems.append(f"command side exited with {cs_status} (see {reports}/command-side.log)")
    print(f"reports: {reports}/{REPORT_PREFIX}.html, {final_csv.name}, {accounting_file.name}")
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_command("vpsmon-load-", lambda work: run(args, work))


if __name__ == "__main__":
    sys.exit(main())
