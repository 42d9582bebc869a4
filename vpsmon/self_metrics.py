"""vpsmon's own metrics: every name, help text, type and label, declared once here.

Built on prometheus_client (in the ``server`` extra; the agent never imports
this module, its counters are in agent/stats.py) rather than on a registry
of our own, because what the Prometheus endpoint of a later issue needs is
exactly what that library already is: ``CollectorRegistry`` rejects a
duplicate name, ``generate_latest`` renders the text format (so
`render_self_metrics` is a few lines), every metric takes ``registry=`` (a
test builds `SelfMetrics` on a fresh registry), and its multiprocess mode
merges the query side's Sanic workers from one mmap file per process, which
a registry of ours would have to reinvent. It is pure Python with no
dependencies of its own.

Other code only increments the attributes of `SELF_METRICS`. Where values
live:

- the command side is one process: they are in memory;
- each query-side worker is a process of its own (Sanic spawns them): the
  main process calls `share_with_workers` before it starts them, so every
  worker writes its values to a file in one directory, and a scrape in any
  worker merges all of them (counters and live gauges are summed). A worker
  that stops takes its live gauges out of the sum (`forget_this_process`),
  and so does one that died: the merge drops the live gauges of processes
  that are gone, while counters keep what they counted;
- values kept elsewhere are read at scrape time by a collector given to
  `render_self_metrics`: `RollupLagCollector` turns the rollup watermarks,
  read from the database by projections/refresh_lag.py, into the refresh lag.

The endpoint of the later issue answers with CONTENT_TYPE and
``render_self_metrics(await rollup_lag_collector(conn, backend))``. Every
process renders every name; those of the other side stay at zero.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Protocol

import psutil
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

# prometheus_client's own switch: set before the workers import it.
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# What the later endpoint answers with.
CONTENT_TYPE = CONTENT_TYPE_LATEST

ROLLUP_REFRESH_LAG = "vpsmon_rollup_refresh_lag_seconds"
ROLLUP_REFRESH_LAG_HELP = (
    "How far each rollup level's materialized buckets are behind the end a refresh"
    " would now bring them to (+Inf: never refreshed); read from the database at scrape time."
)
# Why an agent stream was refused with RESOURCE_EXHAUSTED.
REFUSED_OVER_BUDGET = "ingest_budget"
REFUSED_HANDSHAKE_BACKLOG = "handshake_backlog"


class BatchOutcome(Protocol):
    """What a committed group tells about each of its batches (command_side.ingest.AppendResult)."""

    @property
    def duplicate(self) -> bool: ...

    @property
    def refused(self) -> int: ...


class SelfMetrics:
    """Every recorded self-metric, registered on ``registry`` (duplicates raise ValueError)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        counter = partial(Counter, registry=registry)
        # Summed over the worker processes that are alive (query side).
        live_gauge = partial(Gauge, multiprocess_mode="livesum", registry=registry)
        # Command side: ingest.
        self.committed_rows = counter(
            "vpsmon_ingest_committed_rows",
            "Measurement rows stored by committed ingest transactions.",
        )
        self.committed_batches = counter(
            "vpsmon_ingest_committed_batches",
            "Agent batches committed for the first time (a re-sent one is a duplicate).",
        )
        self.duplicate_batches = counter(
            "vpsmon_ingest_duplicate_batches",
            "Re-sent agent batches whose batch id was already committed; nothing was stored.",
        )
        self.refused_samples = counter(
            "vpsmon_ingest_refused_samples",
            "Snapshots not stored because their VPS already had a sample at that time.",
        )
        self.invalid_snapshots = counter(
            "vpsmon_ingest_invalid_snapshots",
            "Snapshots rejected by validation (counted each time a batch arrives).",
        )
        self.pending_batches = live_gauge(
            "vpsmon_ingest_pending_batches",
            "Batches handed to the ingest writer and not yet committed (queued or committing).",
        )
        self.resource_exhausted = counter(
            "vpsmon_ingest_resource_exhausted",
            f"Agent streams ended with RESOURCE_EXHAUSTED: {REFUSED_OVER_BUDGET} (a VPS over"
            f" its snapshot rate) or {REFUSED_HANDSHAKE_BACKLOG} (too many streams waiting"
            " for their handshake).",
            ["reason"],
        )
        # Command side: agent streams.
        self.agent_streams = live_gauge(
            "vpsmon_agent_streams", "Agent streams open (handshake done)."
        )
        self.agent_messages_sent = counter(
            "vpsmon_agent_messages_sent",
            "Messages written to agents, by payload (batch_ack: the acks).",
            ["payload"],
        )
        # Query side.
        self.sse_clients = live_gauge(
            "vpsmon_sse_clients", "Server-Sent Events streams open, over every query-side worker."
        )
        self.http_requests = counter(
            "vpsmon_http_requests",
            "HTTP responses by route template (unmatched: no route) and status.",
            ["route", "status"],
        )
        self.latest_cache_disconnected = live_gauge(
            "vpsmon_latest_cache_disconnected",
            "Query-side workers whose latest-values cache is not following NOTIFY"
            " (its values can be stale until it reconnects and re-warms).",
        )

    def group_committed(self, rows: int, batches: Sequence[BatchOutcome]) -> None:
        """One ingest transaction committed ``rows`` rows for ``batches``."""
        self.committed_rows.inc(rows)
        duplicates = sum(1 for batch in batches if batch.duplicate)
        self.duplicate_batches.inc(duplicates)
        self.committed_batches.inc(len(batches) - duplicates)
        self.refused_samples.inc(sum(batch.refused for batch in batches))


REGISTRY = CollectorRegistry()
SELF_METRICS = SelfMetrics(REGISTRY)


class RollupLagCollector(Collector):
    """The refresh lag of each rollup level, from values read at scrape time."""

    def __init__(self, lag_seconds: Mapping[str, float]) -> None:
        self._lag_seconds = dict(lag_seconds)

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(ROLLUP_REFRESH_LAG, ROLLUP_REFRESH_LAG_HELP, labels=["level"])]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(ROLLUP_REFRESH_LAG, ROLLUP_REFRESH_LAG_HELP, labels=["level"])
        for level, lag in self._lag_seconds.items():
            family.add_metric([level], lag)
        return [family]


def render_self_metrics(*read_now: Collector) -> bytes:
    """The Prometheus text format of this process's self-metrics (on the query
    side: of all its workers), with those of ``read_now``; a name that two of
    them share raises ValueError."""
    registry = CollectorRegistry(auto_describe=True)  # names of collectors without describe()
    registry.register(recorded_values())
    for collector in read_now:
        registry.register(collector)
    return generate_latest(registry)


def recorded_values() -> Collector:
    """What the code recorded: this process's registry, or every worker's files."""
    directory = _workers_directory()
    return REGISTRY if directory is None else workers_values(Path(directory))


def _workers_directory() -> str | None:
    """The directory this process writes its values to, if it is a worker."""
    directory = os.environ.get(MULTIPROCESS_DIR_ENV)
    if directory and getattr(prometheus_values.ValueClass, "_multiprocess", False):
        return directory
    return None


def workers_values(directory: Path) -> Collector:
    """The merge of every worker's values in ``directory``, without processes that are gone."""
    for pid in _dead_writers(directory):
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]


_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def _dead_writers(directory: Path) -> set[int]:
    pids = set()
    for path in directory.glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if match is not None and not psutil.pid_exists(int(match[1])):
            pids.add(int(match[1]))
    return pids


def share_with_workers() -> Path:
    """Make the worker processes started after this call write their values to
    one directory, emptied now (a value left by an earlier run is no longer true).

    The operator's PROMETHEUS_MULTIPROC_DIR is used if set (it must exist, as
    prometheus_client requires); otherwise a private temporary directory,
    removed at exit. Call it in the main process of the query side before the
    workers start; they must be spawned, not forked, so that they import
    prometheus_client with the variable set (Sanic spawns). The directory
    belongs to one query side: the command side must not be given it.
    """
    configured = os.environ.get(MULTIPROCESS_DIR_ENV)
    if configured:
        directory = Path(configured)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="vpsmon-self-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ[MULTIPROCESS_DIR_ENV] = str(directory)
    return directory


def forget_this_process() -> None:
    """Take this stopping worker's live gauges (e.g. its SSE clients) out of the merge."""
    directory = _workers_directory()
    if directory is not None:
        mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]
