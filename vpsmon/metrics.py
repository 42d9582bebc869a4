"""The measurement columns shared by ingest, projections, queries and the rollup generator.

Metrics come in groups that are reported together and rolled up together.
A group's rollups are separate tables (plain PostgreSQL) or continuous
aggregates (TimescaleDB) that the user-facing views join, because a
continuous aggregate cannot gain a column without being rebuilt. So a group
is frozen once a migration rolls it up: a new metric goes into a new group
(append it to METRIC_GROUPS and register a migration for it in
projections/rollup_sql/registry.py), never into an existing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Column types a rolled-up metric may have; sums of bigint are kept as numeric.
METRIC_SQL_TYPES = ("double precision", "bigint")


@dataclass(frozen=True)
class Metric:
    """One measured column of performance_metrics (and vps_latest)."""

    name: str
    sql_type: str

    def __post_init__(self) -> None:
        if self.sql_type not in METRIC_SQL_TYPES:
            raise ValueError(f"metric {self.name}: type must be one of {METRIC_SQL_TYPES}")


@dataclass(frozen=True)
class MetricGroup:
    """Metrics that a snapshot carries all together or not at all."""

    name: str
    metrics: tuple[Metric, ...]


CORE_METRICS = MetricGroup(
    "core",
    (
        Metric("cpu_usage_percent", "double precision"),
        Metric("memory_usage_bytes", "bigint"),
        Metric("memory_total_bytes", "bigint"),
        Metric("disk_io_read_bps", "bigint"),
        Metric("disk_io_write_bps", "bigint"),
        Metric("network_rx_bps", "bigint"),
        Metric("network_tx_bps", "bigint"),
    ),
)

METRIC_GROUPS = (CORE_METRICS,)

# The measured values, without time and vps_id.
METRICS = tuple(metric.name for group in METRIC_GROUPS for metric in group.metrics)

# Column order of performance_metrics and vps_latest.
METRIC_COLUMNS = ("time", "vps_id", *METRICS)

MetricRow = tuple[datetime, int, float, int, int, int, int, int, int]
