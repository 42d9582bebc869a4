"""The ingest load harness runs end to end with tiny parameters.

A smoke test, not a benchmark: it checks that the command, the locust users
and the row accounting work, and asserts nothing about speed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "loadtests" / "run_ingest_load.py"


def test_harness_runs_and_every_accepted_snapshot_is_one_row(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    # The harness's own path: a throwaway embedded cluster, never the developer's database.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPSMON_")}
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            "--users",
            "2",
            "--batch-size",
            "10",
            "--run-time",
            "5s",
            "--reports",
            str(reports),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"^ack time ms: p50=\d+ p95=\d+ p99=\d+ max=\d+$", result.stdout, re.M), output
    assert re.search(r"^snapshots/s: \d+$", result.stdout, re.M), output
    match = re.search(r"^rows == accepted: (\d+) == (\d+) \(OK\)$", result.stdout, re.M)
    assert match, output
    assert match[1] == match[2]
    assert int(match[1]) > 0
    assert (reports / "ingest.html").is_file()
    assert (reports / "ingest_final_stats.csv").is_file()
