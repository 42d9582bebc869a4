"""The measurement columns shared by ingest, projections and queries."""

from __future__ import annotations

from datetime import datetime

# Column order of performance_metrics and vps_latest.
METRIC_COLUMNS = (
    "time",
    "vps_id",
    "cpu_usage_percent",
    "memory_usage_bytes",
    "memory_total_bytes",
    "disk_io_read_bps",
    "disk_io_write_bps",
    "network_rx_bps",
    "network_tx_bps",
)

# The measured values, without time and vps_id.
METRICS = METRIC_COLUMNS[2:]

MetricRow = tuple[datetime, int, float, int, int, int, int, int, int]
