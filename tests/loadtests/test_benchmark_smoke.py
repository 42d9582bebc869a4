"""The benchmark command runs end to end with tiny parameters.

A smoke test, not a benchmark: it checks that every phase runs, everything
it started stops, and the table comes out; it asserts nothing about speed.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.processes import run_loadtest

HEADER = "| phase | metric | vpsmon median | vpsmon p99 | baseline | baseline median"


def test_benchmark_runs_and_prints_the_table(tmp_path: Path) -> None:
    report = tmp_path / "benchmark.json"
    result = run_loadtest(
        "benchmark.py",
        "--quick",
        "--repeats",
        "1",
        "--agents",
        "2",
        "--batch-size",
        "10",
        "--ingest-seconds",
        "2",
        "--history-vps",
        "3",
        "--history-days",
        "1",
        "--freshness-samples",
        "3",
        "--query-requests",
        "5",
        "--latency-samples",
        "5",
        "--greedy-seconds",
        "2",
        "--agent-seconds",
        "3",
        "--no-install-node-exporter",
        "--report",
        str(report),
        timeout=180,
    )
    assert HEADER in result.stdout, result.stdout + result.stderr
    data = json.loads(report.read_text())
    phases = {figure["phase"] for figure in data["figures"]}
    assert phases == {"ingest", "greedy", "freshness", "queries", "agent"}, data["figures"]
