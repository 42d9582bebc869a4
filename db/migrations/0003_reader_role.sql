-- vpsmon_reader: read-only access for psql, Grafana and notebooks to the
-- measurements, the rollup views and the VPS list, and to nothing that holds a
-- secret (agent_tokens, vps_events). It cannot log in by itself: grant it to a
-- login role, e.g. `CREATE ROLE grafana LOGIN PASSWORD '…' IN ROLE vpsmon_reader`.

-- Roles are cluster-wide and several databases may be migrated at once.
DO $$
BEGIN
    CREATE ROLE vpsmon_reader NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END;
$$;

GRANT USAGE ON SCHEMA public TO vpsmon_reader;
GRANT SELECT ON
    vps,
    vps_latest,
    performance_metrics,
    performance_metrics_1m,
    performance_metrics_5m,
    performance_metrics_1h
TO vpsmon_reader;
