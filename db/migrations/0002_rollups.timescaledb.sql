-- Rollups on TimescaleDB: performance_metrics becomes a hypertable and the
-- three views are continuous aggregates, 5m and 1h stacked on 1m
-- (hierarchical), with real-time aggregation. Refresh, retention and
-- compression policies are set from the settings by `vpsmon migrate`
-- (vpsmon/storage/policies.py). Column names and types equal those of the
-- plain-PostgreSQL views.

SELECT create_hypertable('performance_metrics', by_range('time', INTERVAL '1 day'),
                         migrate_data => true);

ALTER TABLE performance_metrics SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'vps_id',
    timescaledb.compress_orderby = 'time DESC'
);

CREATE MATERIALIZED VIEW performance_metrics_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '1 minute', time) AS bucket,
    vps_id,
    count(*) AS samples,
    (sum(cpu_usage_percent) / count(*))::double precision AS cpu_usage_percent_avg,
    min(cpu_usage_percent) AS cpu_usage_percent_min,
    max(cpu_usage_percent) AS cpu_usage_percent_max,
    sum(cpu_usage_percent) AS cpu_usage_percent_sum,
    (sum(memory_usage_bytes)::numeric / count(*))::double precision AS memory_usage_bytes_avg,
    min(memory_usage_bytes) AS memory_usage_bytes_min,
    max(memory_usage_bytes) AS memory_usage_bytes_max,
    sum(memory_usage_bytes)::numeric AS memory_usage_bytes_sum,
    (sum(memory_total_bytes)::numeric / count(*))::double precision AS memory_total_bytes_avg,
    min(memory_total_bytes) AS memory_total_bytes_min,
    max(memory_total_bytes) AS memory_total_bytes_max,
    sum(memory_total_bytes)::numeric AS memory_total_bytes_sum,
    (sum(disk_io_read_bps)::numeric / count(*))::double precision AS disk_io_read_bps_avg,
    min(disk_io_read_bps) AS disk_io_read_bps_min,
    max(disk_io_read_bps) AS disk_io_read_bps_max,
    sum(disk_io_read_bps)::numeric AS disk_io_read_bps_sum,
    (sum(disk_io_write_bps)::numeric / count(*))::double precision AS disk_io_write_bps_avg,
    min(disk_io_write_bps) AS disk_io_write_bps_min,
    max(disk_io_write_bps) AS disk_io_write_bps_max,
    sum(disk_io_write_bps)::numeric AS disk_io_write_bps_sum,
    (sum(network_rx_bps)::numeric / count(*))::double precision AS network_rx_bps_avg,
    min(network_rx_bps) AS network_rx_bps_min,
    max(network_rx_bps) AS network_rx_bps_max,
    sum(network_rx_bps)::numeric AS network_rx_bps_sum,
    (sum(network_tx_bps)::numeric / count(*))::double precision AS network_tx_bps_avg,
    min(network_tx_bps) AS network_tx_bps_min,
    max(network_tx_bps) AS network_tx_bps_max,
    sum(network_tx_bps)::numeric AS network_tx_bps_sum
FROM performance_metrics
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW performance_metrics_5m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '5 minutes', bucket) AS bucket,
    vps_id,
    sum(samples)::bigint AS samples,
    (sum(cpu_usage_percent_sum) / sum(samples))::double precision AS cpu_usage_percent_avg,
    min(cpu_usage_percent_min) AS cpu_usage_percent_min,
    max(cpu_usage_percent_max) AS cpu_usage_percent_max,
    sum(cpu_usage_percent_sum) AS cpu_usage_percent_sum,
    (sum(memory_usage_bytes_sum) / sum(samples))::double precision AS memory_usage_bytes_avg,
    min(memory_usage_bytes_min) AS memory_usage_bytes_min,
    max(memory_usage_bytes_max) AS memory_usage_bytes_max,
    sum(memory_usage_bytes_sum) AS memory_usage_bytes_sum,
    (sum(memory_total_bytes_sum) / sum(samples))::double precision AS memory_total_bytes_avg,
    min(memory_total_bytes_min) AS memory_total_bytes_min,
    max(memory_total_bytes_max) AS memory_total_bytes_max,
    sum(memory_total_bytes_sum) AS memory_total_bytes_sum,
    (sum(disk_io_read_bps_sum) / sum(samples))::double precision AS disk_io_read_bps_avg,
    min(disk_io_read_bps_min) AS disk_io_read_bps_min,
    max(disk_io_read_bps_max) AS disk_io_read_bps_max,
    sum(disk_io_read_bps_sum) AS disk_io_read_bps_sum,
    (sum(disk_io_write_bps_sum) / sum(samples))::double precision AS disk_io_write_bps_avg,
    min(disk_io_write_bps_min) AS disk_io_write_bps_min,
    max(disk_io_write_bps_max) AS disk_io_write_bps_max,
    sum(disk_io_write_bps_sum) AS disk_io_write_bps_sum,
    (sum(network_rx_bps_sum) / sum(samples))::double precision AS network_rx_bps_avg,
    min(network_rx_bps_min) AS network_rx_bps_min,
    max(network_rx_bps_max) AS network_rx_bps_max,
    sum(network_rx_bps_sum) AS network_rx_bps_sum,
    (sum(network_tx_bps_sum) / sum(samples))::double precision AS network_tx_bps_avg,
    min(network_tx_bps_min) AS network_tx_bps_min,
    max(network_tx_bps_max) AS network_tx_bps_max,
    sum(network_tx_bps_sum) AS network_tx_bps_sum
FROM performance_metrics_1m
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW performance_metrics_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '1 hour', bucket) AS bucket,
    vps_id,
    sum(samples)::bigint AS samples,
    (sum(cpu_usage_percent_sum) / sum(samples))::double precision AS cpu_usage_percent_avg,
    min(cpu_usage_percent_min) AS cpu_usage_percent_min,
    max(cpu_usage_percent_max) AS cpu_usage_percent_max,
    sum(cpu_usage_percent_sum) AS cpu_usage_percent_sum,
    (sum(memory_usage_bytes_sum) / sum(samples))::double precision AS memory_usage_bytes_avg,
    min(memory_usage_bytes_min) AS memory_usage_bytes_min,
    max(memory_usage_bytes_max) AS memory_usage_bytes_max,
    sum(memory_usage_bytes_sum) AS memory_usage_bytes_sum,
    (sum(memory_total_bytes_sum) / sum(samples))::double precision AS memory_total_bytes_avg,
    min(memory_total_bytes_min) AS memory_total_bytes_min,
    max(memory_total_bytes_max) AS memory_total_bytes_max,
    sum(memory_total_bytes_sum) AS memory_total_bytes_sum,
    (sum(disk_io_read_bps_sum) / sum(samples))::double precision AS disk_io_read_bps_avg,
    min(disk_io_read_bps_min) AS disk_io_read_bps_min,
    max(disk_io_read_bps_max) AS disk_io_read_bps_max,
    sum(disk_io_read_bps_sum) AS disk_io_read_bps_sum,
    (sum(disk_io_write_bps_sum) / sum(samples))::double precision AS disk_io_write_bps_avg,
    min(disk_io_write_bps_min) AS disk_io_write_bps_min,
    max(disk_io_write_bps_max) AS disk_io_write_bps_max,
    sum(disk_io_write_bps_sum) AS disk_io_write_bps_sum,
    (sum(network_rx_bps_sum) / sum(samples))::double precision AS network_rx_bps_avg,
    min(network_rx_bps_min) AS network_rx_bps_min,
    max(network_rx_bps_max) AS network_rx_bps_max,
    sum(network_rx_bps_sum) AS network_rx_bps_sum,
    (sum(network_tx_bps_sum) / sum(samples))::double precision AS network_tx_bps_avg,
    min(network_tx_bps_min) AS network_tx_bps_min,
    max(network_tx_bps_max) AS network_tx_bps_max,
    sum(network_tx_bps_sum) AS network_tx_bps_sum
FROM performance_metrics_5m
GROUP BY 1, 2
WITH NO DATA;
