"""The ingest load harness runs end to end with tiny parameters.

A smoke test, not a benchmark: it checks that the command, the locust users
and the row accounting work, and asserts nothing about speed.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.processes import run_loadtest


def test_harness_runs_and_every_accepted_snapshot_is_one_row(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = run_loadtest(
        "run_ingest_load.py",
        "--users",
        "2",
        "--batch-size",
        "10",
        "--run-time",
        "5s",
        "--reports",
        str(reports),
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert re.search(r"^ack time ms: p50=\d+ p95=\d+ p99=\d+ max=\d+$", result.stdout, re.M), output
    assert re.search(r"^snapshots/s: \d+$", result.stdout, re.M), output
    match = re.search(r"^rows == accepted: (\d+) == (\d+) \(OK\)$", result.stdout, re.M)
    assert match, output
    assert match[1] == match[2]
    assert int(match[1]) > 0
    assert (reports / "ingest.html").is_file()
    assert (reports / "ingest_final_stats.csv").is_file()
