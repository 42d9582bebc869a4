-- One row per run of a background maintenance job (command_side/maintenance.py):
-- which job, which runner process ran it (one leader per cluster, elected by
-- an advisory lock), when, and the error if it failed. Operators and the
-- self-metrics read it; the runner prunes rows older than a week.
CREATE TABLE maintenance_runs (
    job         text NOT NULL,
    runner      text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    error       text
);
CREATE INDEX maintenance_runs_job_started_at_idx ON maintenance_runs (job, started_at DESC);

-- The runner runs in the command side and in `vpsmon maintain`, both as
-- vpsmon_ingest.
GRANT SELECT, INSERT, DELETE ON maintenance_runs TO vpsmon_ingest;
GRANT SELECT ON maintenance_runs TO vpsmon_query;
