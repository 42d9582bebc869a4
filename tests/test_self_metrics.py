"""The self-metrics registry: one declaration per name, duplicates refused, the text
format rendered, and the values of several worker processes merged."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import DuplicateTimeseries

from vpsmon.self_metrics import (
    MULTIPROCESS_DIR_ENV,
    ROLLUP_REFRESH_LAG,
    RollupLagCollector,
    SelfMetrics,
    render_self_metrics,
    share_with_workers,
    workers_values,
)

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Outcome:
    duplicate: bool = False
    refused: int = 0


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text-format page, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_a_fresh_registry_reads_back_what_a_group_commit_recorded() -> None:
    registry = CollectorRegistry()
    metrics = SelfMetrics(registry)
    metrics.group_committed(9, [Outcome(), Outcome(refused=2), Outcome(duplicate=True)])
    metrics.group_committed(4, [Outcome()])
    assert registry.get_sample_value("vpsmon_ingest_committed_rows_total") == 13
    assert registry.get_sample_value("vpsmon_ingest_committed_batches_total") == 3
    assert registry.get_sample_value("vpsmon_ingest_duplicate_batches_total") == 1
    assert registry.get_sample_value("vpsmon_ingest_refused_samples_total") == 2


def test_every_name_is_vpsmon_s_and_has_help() -> None:
    registry = CollectorRegistry()
    SelfMetrics(registry)
    families = list(registry.collect())
    assert len({family.name for family in families}) == len(families)
    for family in families:
        assert family.name.startswith("vpsmon_"), family.name
        assert family.documentation.strip(), family.name


def test_a_name_declared_twice_is_refused() -> None:
    registry = CollectorRegistry()
    SelfMetrics(registry)
    with pytest.raises(DuplicateTimeseries, match="vpsmon_ingest_committed_rows"):
        SelfMetrics(registry)
    with pytest.raises(DuplicateTimeseries):
        Counter("vpsmon_sse_clients", "a second meaning", registry=registry)


def test_a_collector_read_at_scrape_time_may_not_reuse_a_recorded_name() -> None:
    lag = RollupLagCollector({"1m": 0.0})
    with pytest.raises(DuplicateTimeseries, match=ROLLUP_REFRESH_LAG):
        render_self_metrics(lag, RollupLagCollector({"5m": 0.0}))


def test_rendering_gives_the_recorded_values_and_those_read_now() -> None:
    page = samples(render_self_metrics(RollupLagCollector({"1m": 12.0, "1h": math.inf})))
    assert page[(ROLLUP_REFRESH_LAG, (("level", "1m"),))] == 12.0
    assert page[(ROLLUP_REFRESH_LAG, (("level", "1h"),))] == math.inf
    assert ("vpsmon_ingest_committed_rows_total", ()) in page
    assert ("vpsmon_sse_clients", ()) in page


WORKER = """
import sys
from vpsmon.self_metrics import SELF_METRICS, render_self_metrics
requests, clients = int(sys.argv[1]), int(sys.argv[2])
SELF_METRICS.http_requests.labels("/api/vps", "200").inc(requests)
SELF_METRICS.sse_clients.inc(clients)
if sys.argv[3] == "render":
    sys.stdout.write(render_self_metrics().decode())
else:
    print("counted", flush=True)
    sys.stdin.read()  # stays alive until the test closes its stdin
"""


def test_two_worker_processes_are_merged_and_a_gone_one_leaves_the_live_gauges(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "workers"
    directory.mkdir()
    env = {**os.environ, MULTIPROCESS_DIR_ENV: str(directory)}
    command = [sys.executable, "-c", WORKER]
    with subprocess.Popen(
        [*command, "2", "1", "wait"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as first:
        assert first.stdout is not None
        assert first.stdin is not None
        assert first.stdout.readline() == "counted\n"
        second = subprocess.run(
            [*command, "3", "2", "render"], env=env, cwd=ROOT, capture_output=True, timeout=60
        )
        assert second.returncode == 0, second.stderr
        first.stdin.close()
        assert first.wait(timeout=60) == 0
    page = samples(second.stdout)
    route = (("route", "/api/vps"), ("status", "200"))
    assert page[("vpsmon_http_requests_total", route)] == 5
    assert page[("vpsmon_sse_clients", ())] == 3  # both alive at that scrape

    registry = CollectorRegistry()
    registry.register(workers_values(directory))
    assert registry.get_sample_value("vpsmon_http_requests_total", dict(route)) == 5
    # Both gone: their counters stay, their live gauges leave with them.
    assert registry.get_sample_value("vpsmon_sse_clients") is None


def test_the_workers_directory_is_emptied_or_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / "counter_4242.db").write_bytes(b"left by an earlier run")
    monkeypatch.setenv(MULTIPROCESS_DIR_ENV, str(configured))
    assert share_with_workers() == configured
    assert list(configured.iterdir()) == []

    monkeypatch.delenv(MULTIPROCESS_DIR_ENV)
    made = share_with_workers()
    assert made.is_dir()
    assert os.environ[MULTIPROCESS_DIR_ENV] == str(made)
