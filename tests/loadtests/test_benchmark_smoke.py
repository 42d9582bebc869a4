"""The benchmark command runs end to end with tiny parameters.

A smoke test, not a benchmark: it checks that every phase runs, everything
it started stops, and the table comes out; it asserts nothing about speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = ROOT / "loadtests" / "benchmark.py"
HEADER = "| phase | metric | vpsmon median | vpsmon p99 | baseline | baseline median"


def test_benchmark_runs_and_prints_the_table(tmp_path: Path) -> None:
    report = tmp_path / "benchmark.json"
    # The benchmark's own path: a throwaway embedded cluster, never the developer's database.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPSMON_")}
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
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
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert HEADER in result.stdout, output
    data = json.loads(report.read_text())
    phases = {figure["phase"] for figure in data["figures"]}
    assert phases == {"ingest", "greedy", "freshness", "queries", "agent"}, data["figures"]
