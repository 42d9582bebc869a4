-- Rollups on plain PostgreSQL: the same view names and columns as the
-- TimescaleDB continuous aggregates, materialized incrementally by
-- projections/postgres_rollups.py.
--
-- Each level keeps sums, counts, minima and maxima per bucket in a table in
-- the schema vpsmon_rollups, so that coarser levels and arbitrary intervals
-- re-aggregate exactly (averages are never averaged). A view shows the
-- materialized buckets below the level's watermark and computes everything at
-- or above it from the level below, so committed rows show at once (the
-- equivalent of TimescaleDB's real-time aggregation).
--
-- Late rows (older than the invalidation threshold) are logged by a
-- statement trigger, and the next refresh re-materializes the buckets they
-- touched: the equivalent of TimescaleDB's invalidation log.

CREATE SCHEMA vpsmon_rollups;

-- Rows older than this threshold land in buckets a refresh may already have
-- materialized, so the trigger logs them. A refresh raises it (under an
-- exclusive advisory lock that waits for in-flight inserts) before it
-- materializes anything below it.
CREATE TABLE vpsmon_rollups.refresh_state (
    singleton              boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    invalidation_threshold timestamptz NOT NULL
);
INSERT INTO vpsmon_rollups.refresh_state VALUES (true, '-infinity');

CREATE TABLE vpsmon_rollups.watermarks (
    rollup             text PRIMARY KEY,
    bucket_width       interval NOT NULL UNIQUE,
    materialized_until timestamptz NOT NULL
);
INSERT INTO vpsmon_rollups.watermarks VALUES
    ('1m', interval '1 minute', '-infinity'),
    ('5m', interval '5 minutes', '-infinity'),
    ('1h', interval '1 hour', '-infinity');

CREATE TABLE vpsmon_rollups.invalidations (
    vps_id   integer NOT NULL,
    lowest   timestamptz NOT NULL,
    greatest timestamptz NOT NULL
);

-- Retention deletes by time.
CREATE INDEX performance_metrics_time_idx ON performance_metrics (time);

-- Takes the shared side of the lock that a refresh takes exclusively while it
-- raises the threshold, so no insert can judge itself "not late" against a
-- threshold that a concurrent refresh has already passed.
CREATE FUNCTION vpsmon_rollups.log_late_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    threshold timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(736900001);
    SELECT invalidation_threshold INTO threshold FROM vpsmon_rollups.refresh_state;
    INSERT INTO vpsmon_rollups.invalidations (vps_id, lowest, greatest)
    SELECT vps_id, min(time), max(time) FROM new_rows
    WHERE time < threshold
    GROUP BY vps_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER performance_metrics_log_late_rows
    AFTER INSERT ON performance_metrics
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vpsmon_rollups.log_late_rows();

-- 1m level ------------------------------------------------------------

CREATE TABLE vpsmon_rollups.data_1m (
    bucket  timestamptz NOT NULL,
    vps_id  integer NOT NULL REFERENCES vps (id) ON DELETE CASCADE,
    samples bigint NOT NULL,
    cpu_usage_percent_sum double precision NOT NULL,
    cpu_usage_percent_min double precision NOT NULL,
    cpu_usage_percent_max double precision NOT NULL,
    memory_usage_bytes_sum numeric NOT NULL,
    memory_usage_bytes_min bigint NOT NULL,
    memory_usage_bytes_max bigint NOT NULL,
    memory_total_bytes_sum numeric NOT NULL,
    memory_total_bytes_min bigint NOT NULL,
    memory_total_bytes_max bigint NOT NULL,
    disk_io_read_bps_sum numeric NOT NULL,
    disk_io_read_bps_min bigint NOT NULL,
    disk_io_read_bps_max bigint NOT NULL,
    disk_io_write_bps_sum numeric NOT NULL,
    disk_io_write_bps_min bigint NOT NULL,
    disk_io_write_bps_max bigint NOT NULL,
    network_rx_bps_sum numeric NOT NULL,
    network_rx_bps_min bigint NOT NULL,
    network_rx_bps_max bigint NOT NULL,
    network_tx_bps_sum numeric NOT NULL,
    network_tx_bps_min bigint NOT NULL,
    network_tx_bps_max bigint NOT NULL,
    PRIMARY KEY (vps_id, bucket)
);
CREATE INDEX data_1m_bucket_idx ON vpsmon_rollups.data_1m (bucket);
-- The 1m buckets in [lowest, highest) computed from raw rows.
-- A plain SQL function so that the planner inlines it and pushes vps_id and
-- time filters down.
CREATE FUNCTION vpsmon_rollups.aggregate_1m(lowest timestamptz, highest timestamptz)
RETURNS SETOF vpsmon_rollups.data_1m
LANGUAGE sql STABLE AS $$
    SELECT date_bin('1 minute', p.time, TIMESTAMPTZ '2000-01-01 00:00:00+00'), p.vps_id, count(*),
        sum(p.cpu_usage_percent), min(p.cpu_usage_percent), max(p.cpu_usage_percent),
        sum(p.memory_usage_bytes)::numeric, min(p.memory_usage_bytes), max(p.memory_usage_bytes),
        sum(p.memory_total_bytes)::numeric, min(p.memory_total_bytes), max(p.memory_total_bytes),
        sum(p.disk_io_read_bps)::numeric, min(p.disk_io_read_bps), max(p.disk_io_read_bps),
        sum(p.disk_io_write_bps)::numeric, min(p.disk_io_write_bps), max(p.disk_io_write_bps),
        sum(p.network_rx_bps)::numeric, min(p.network_rx_bps), max(p.network_rx_bps),
        sum(p.network_tx_bps)::numeric, min(p.network_tx_bps), max(p.network_tx_bps)
    FROM performance_metrics p
    WHERE p.time >= lowest AND p.time < highest
    GROUP BY 1, 2
$$;
CREATE VIEW performance_metrics_1m AS
SELECT
    bucket,
    vps_id,
    samples,
    (cpu_usage_percent_sum / samples)::double precision AS cpu_usage_percent_avg,
    cpu_usage_percent_min,
    cpu_usage_percent_max,
    cpu_usage_percent_sum,
    (memory_usage_bytes_sum / samples)::double precision AS memory_usage_bytes_avg,
    memory_usage_bytes_min,
    memory_usage_bytes_max,
    memory_usage_bytes_sum,
    (memory_total_bytes_sum / samples)::double precision AS memory_total_bytes_avg,
    memory_total_bytes_min,
    memory_total_bytes_max,
    memory_total_bytes_sum,
    (disk_io_read_bps_sum / samples)::double precision AS disk_io_read_bps_avg,
    disk_io_read_bps_min,
    disk_io_read_bps_max,
    disk_io_read_bps_sum,
    (disk_io_write_bps_sum / samples)::double precision AS disk_io_write_bps_avg,
    disk_io_write_bps_min,
    disk_io_write_bps_max,
    disk_io_write_bps_sum,
    (network_rx_bps_sum / samples)::double precision AS network_rx_bps_avg,
    network_rx_bps_min,
    network_rx_bps_max,
    network_rx_bps_sum,
    (network_tx_bps_sum / samples)::double precision AS network_tx_bps_avg,
    network_tx_bps_min,
    network_tx_bps_max,
    network_tx_bps_sum
FROM (
    SELECT d.*
    FROM vpsmon_rollups.data_1m d
    WHERE d.bucket < (SELECT materialized_until FROM vpsmon_rollups.watermarks WHERE rollup = '1m')
    UNION ALL
    SELECT t.*
    FROM vpsmon_rollups.aggregate_1m(
        (SELECT materialized_until FROM vpsmon_rollups.watermarks WHERE rollup = '1m'),
        'infinity'
    ) t
) AS buckets;

-- 5m level ------------------------------------------------------------

CREATE TABLE vpsmon_rollups.data_5m (
    bucket  timestamptz NOT NULL,
    vps_id  integer NOT NULL REFERENCES vps (id) ON DELETE CASCADE,
    samples bigint NOT NULL,
    cpu_usage_percent_sum double precision NOT NULL,
    cpu_usage_percent_min double precision NOT NULL,
    cpu_usage_percent_max double precision NOT NULL,
    memory_usage_bytes_sum numeric NOT NULL,
    memory_usage_bytes_min bigint NOT NULL,
    memory_usage_bytes_max bigint NOT NULL,
    memory_total_bytes_sum numeric NOT NULL,
    memory_total_bytes_min bigint NOT NULL,
    memory_total_bytes_max bigint NOT NULL,
    disk_io_read_bps_sum numeric NOT NULL,
    disk_io_read_bps_min bigint NOT NULL,
    disk_io_read_bps_max bigint NOT NULL,
    disk_io_write_bps_sum numeric NOT NULL,
    disk_io_write_bps_min bigint NOT NULL,
    disk_io_write_bps_max bigint NOT NULL,
    network_rx_bps_sum numeric NOT NULL,
    network_rx_bps_min bigint NOT NULL,
    network_rx_bps_max bigint NOT NULL,
    network_tx_bps_sum numeric NOT NULL,
    network_tx_bps_min bigint NOT NULL,
    network_tx_bps_max bigint NOT NULL,
    PRIMARY KEY (vps_id, bucket)
);
CREATE INDEX data_5m_bucket_idx ON vpsmon_rollups.data_5m (bucket);
-- The 5m buckets in [lowest, highest) computed from the 1m view (materialized buckets plus its own tail).
-- A plain SQL function so that the planner inlines it and pushes vps_id and
-- time filters down.
CREATE FUNCTION vpsmon_rollups.aggregate_5m(lowest timestamptz, highest timestamptz)
RETURNS SETOF vpsmon_rollups.data_5m
LANGUAGE sql STABLE AS $$
    SELECT date_bin('5 minutes', s.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00'), s.vps_id,
        sum(s.samples)::bigint,
        sum(s.cpu_usage_percent_sum), min(s.cpu_usage_percent_min), max(s.cpu_usage_percent_max),
        sum(s.memory_usage_bytes_sum), min(s.memory_usage_bytes_min), max(s.memory_usage_bytes_max),
        sum(s.memory_total_bytes_sum), min(s.memory_total_bytes_min), max(s.memory_total_bytes_max),
        sum(s.disk_io_read_bps_sum), min(s.disk_io_read_bps_min), max(s.disk_io_read_bps_max),
        sum(s.disk_io_write_bps_sum), min(s.disk_io_write_bps_min), max(s.disk_io_write_bps_max),
        sum(s.network_rx_bps_sum), min(s.network_rx_bps_min), max(s.network_rx_bps_max),
        sum(s.network_tx_bps_sum), min(s.network_tx_bps_min), max(s.network_tx_bps_max)
    FROM performance_metrics_1m s
    WHERE s.bucket >= lowest AND s.bucket < highest
    GROUP BY 1, 2
$$;
CREATE VIEW performance_metrics_5m AS
SELECT
    bucket,
    vps_id,
    samples,
    (cpu_usage_percent_sum / samples)::double precision AS cpu_usage_percent_avg,
    cpu_usage_percent_min,
    cpu_usage_percent_max,
    cpu_usage_percent_sum,
    (memory_usage_bytes_sum / samples)::double precision AS memory_usage_bytes_avg,
    memory_usage_bytes_min,
    memory_usage_bytes_max,
    memory_usage_bytes_sum,
    (memory_total_bytes_sum / samples)::double precision AS memory_total_bytes_avg,
    memory_total_bytes_min,
    memory_total_bytes_max,
    memory_total_bytes_sum,
    (disk_io_read_bps_sum / samples)::double precision AS disk_io_read_bps_avg,
    disk_io_read_bps_min,
    disk_io_read_bps_max,
    disk_io_read_bps_sum,
    (disk_io_write_bps_sum / samples)::double precision AS disk_io_write_bps_avg,
    disk_io_write_bps_min,
    disk_io_write_bps_max,
    disk_io_write_bps_sum,
    (network_rx_bps_sum / samples)::double precision AS network_rx_bps_avg,
    network_rx_bps_min,
    network_rx_bps_max,
    network_rx_bps_sum,
    (network_tx_bps_sum / samples)::double precision AS network_tx_bps_avg,
    network_tx_bps_min,
    network_tx_bps_max,
    network_tx_bps_sum
FROM (
    SELECT d.*
    FROM vpsmon_rollups.data_5m d
    WHERE d.bucket < (SELECT materialized_until FROM vpsmon_rollups.watermarks WHERE rollup = '5m')
    UNION ALL
    SELECT t.*
    FROM vpsmon_rollups.aggregate_5m(
        (SELECT materialized_until FROM vpsmon_rollups.watermarks WHERE rollup = '5m'),
        'infinity'
    ) t
) AS buckets;

-- 1h level ------------------------------------------------------------

CREATE TABLE vpsmon_rollups.data_1h (
    bucket  timestamptz NOT NULL,
    vps_id  integer NOT NULL REFERENCES vps (id) ON DELETE CASCADE,
    samples bigint NOT NULL,
    cpu_usage_percent_sum double precision NOT NULL,
    cpu_usage_percent_min double precision NOT NULL,
    cpu_usage_percent_max double precision NOT NULL,
    memory_usage_bytes_sum numeric NOT NULL,
    memory_usage_bytes_min bigint NOT NULL,
    memory_usage_bytes_max bigint NOT NULL,
    memory_total_bytes_sum numeric NOT NULL,
    memory_total_bytes_min bigint NOT NULL,
    memory_total_bytes_max bigint NOT NULL,
    disk_io_read_bps_sum numeric NOT NULL,
    disk_io_read_bps_min bigint NOT NULL,
    disk_io_read_bps_max bigint NOT NULL,
    disk_io_write_bps_sum numeric NOT NULL,
    disk_io_write_bps_min bigint NOT NULL,
    disk_io_write_bps_max bigint NOT NULL,
    network_rx_bps_sum numeric NOT NULL,
    network_rx_bps_min bigint NOT NULL,
    network_rx_bps_max bigint NOT NULL,
    network_tx_bps_sum numeric NOT NULL,
    network_tx_bps_min bigint NOT NULL,
    network_tx_bps_max bigint NOT NULL,
    PRIMARY KEY (vps_id, bucket)
);
CREATE INDEX data_1h_bucket_idx ON vpsmon_rollups.data_1h (bucket);
-- The 1h buckets in [lowest, highest) computed from the 5m view (materialized buckets plus its own tail).
-- A plain SQL function so that the planner inlines it and pushes vps_id and
-- time filters down.
CREATE FUNCTION vpsmon_rollups.aggregate_1h(lowest timestamptz, highest timestamptz)
RETURNS SETOF vpsmon_rollups.data_1h
LANGUAGE sql STABLE AS $$
    SELECT date_bin('1 hour', s.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00'), s.vps_id,
        sum(s.samples)::bigint,
        sum(s.cpu_usage_percent_sum), min(s.cpu_usage_percent_min), max(s.cpu_usage_percent_max),
        sum(s.memory_usage_bytes_sum), min(s.memory_usage_bytes_min), max(s.memory_usage_bytes_max),
        sum(s.memory_total_bytes_sum), min(s.memory_total_bytes_min), max(s.memory_total_bytes_max),
        sum(s.disk_io_read_bps_sum), min(s.disk_io_read_bps_min), max(s.disk_io_read_bps_max),
        sum(s.disk_io_write_bps_sum), min(s.disk_io_write_bps_min), max(s.disk_io_write_bps_max),
        sum(s.network_rx_bps_sum), min(s.network_rx_bps_min), max(s.network_rx_bps_max),
        sum(s.network_tx_bps_sum), min(s.network_tx_bps_min), max(s.network_tx_bps_max)
    FROM performance_metrics_5m s
    WHERE s.bucket >= lowest AND s.bucket < highest
    GROUP BY 1, 2
$$;
CREATE VIEW performance_metrics_1h AS
SELECT
    bucket,
    vps_id,
    samples,
    (cpu_usage_percent_sum / samples)::double precision AS cpu_usage_percent_avg,
    cpu_usage_percent_min,
    cpu_usage_percent_max,
    cpu_usage_percent_sum,
    (memory_usage_bytes_sum / samples)::double precision AS memory_usage_bytes_avg,
    memory_usage_bytes_min,
    memory_usage_bytes_max,
    memory_usage_bytes_sum,
    (memory_total_bytes_sum / samples)::double precision AS memory_total_bytes_avg,
    memory_total_bytes_min,
    memory_total_bytes_max,
    memory_total_bytes_sum,
    (disk_io_read_bps_sum / samples)::double precision AS disk_io_read_bps_avg,
    disk_io_read_bps_min,
    disk_io_read_bps_max,
    disk_io_read_bps_sum,
    (disk_io_write_bps_sum / samples)::double precision AS disk_io_write_bps_avg,
    disk_io_write_bps_min,
    disk_io_write_bps_max,
    disk_io_write_bps_sum,
    (network_rx_bps_sum / samples)::double precision AS network_rx_bps_avg,
    network_rx_bps_min,
    network_rx_bps_max,
    network_rx_bps_sum,
    (network_tx_bps_sum / samples)::double precision AS network_tx_bps_avg,
    network_tx_bps_min,
    network_tx_bps_max,
    network_tx_bps_sum
FROM (
    SELECT d.*
    FROM vpsmon_rollups.data_1h d
    WHERE d.bucket < (SELECT materialized_until FROM vpsmon_rollups.watermarks WHERE rollup = '1h')
    UNION ALL
    SELECT t.*
    FROM vpsmon_rollups.aggregate_1h(
        (SELECT materialized_until FROM vpsmon_rollups.watermarks WHERE rollup = '1h'),
        'infinity'
    ) t
) AS buckets;
