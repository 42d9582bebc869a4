-- Server roles: each server process connects with a role that may do only
-- what its code executes, so a leaked query-side password cannot forge
-- measurements and a leaked command-side password cannot read accounts.
-- Migrations keep running as the owner (`vpsmon migrate`); the servers
-- then only check that the schema is current.
--
--   vpsmon_ingest  the command side: append measurements and batch keys,
--                  upsert vps_latest, read tokens, VPS list and agent config,
--                  prune batch keys; on plain PostgreSQL also refresh the
--                  rollups and enforce raw retention. No DDL, no accounts.
--   vpsmon_query   the query side: read what the API serves, and the
--                  sessions, API tokens and login failures the accounts code
--                  writes; on plain PostgreSQL also refresh the rollups. No
--                  writes to measurements, vps_latest, VPSes or agent tokens.
--
-- Both are NOLOGIN groups: grant them to login roles, e.g.
--   CREATE ROLE vpsmon_cmd LOGIN PASSWORD '…' IN ROLE vpsmon_ingest;
-- LISTEN/NOTIFY and advisory locks need no privilege.
--
-- The database and the schema public are closed to PUBLIC (where the
-- migrating role owns them): only vpsmon's roles may connect.

DO $$
BEGIN
    CREATE ROLE vpsmon_ingest NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END;
$$;
DO $$
BEGIN
    CREATE ROLE vpsmon_query NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END;
$$;

GRANT USAGE ON SCHEMA public TO vpsmon_ingest, vpsmon_query;

-- Every server checks at start that the schema is current, and reads the
-- retention periods.
GRANT SELECT ON schema_migrations, retention_policy TO vpsmon_ingest, vpsmon_query;

-- Command side.
GRANT SELECT ON vps, agent_tokens, vps_agent_config TO vpsmon_ingest;
GRANT SELECT, INSERT ON performance_metrics TO vpsmon_ingest;
GRANT SELECT, INSERT, DELETE ON ingested_batches TO vpsmon_ingest;
GRANT SELECT, INSERT, UPDATE ON vps_latest TO vpsmon_ingest;

-- Query side: what the API serves (the views run as their owner, the
-- plain-PostgreSQL ones call functions that read performance_metrics as the
-- caller) and the accounts code's writes.
GRANT SELECT ON
    vps,
    vps_latest,
    performance_metrics,
    performance_metrics_1m,
    performance_metrics_5m,
    performance_metrics_1h,
    users
TO vpsmon_query;
GRANT SELECT, INSERT, DELETE ON sessions, login_failures TO vpsmon_query;
GRANT SELECT, UPDATE (last_used_at, revoked_at) ON api_tokens TO vpsmon_query;

-- Plain PostgreSQL only: the rollups are projections both servers refresh
-- (projections/maintenance.py), and the insert trigger logs late rows as the
-- inserting role; the command side also deletes raw rows past retention.
-- On TimescaleDB its own scheduler runs these jobs as the owner.
DO $$
BEGIN
    IF to_regnamespace('vpsmon_rollups') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA vpsmon_rollups TO vpsmon_ingest, vpsmon_query;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA vpsmon_rollups
            TO vpsmon_ingest, vpsmon_query;
        -- A refresh aggregates each level from the view of the level below.
        GRANT SELECT ON performance_metrics_1m, performance_metrics_5m, performance_metrics_1h
            TO vpsmon_ingest;
        GRANT DELETE ON performance_metrics TO vpsmon_ingest;
    END IF;
END;
$$;

-- Close the database to PUBLIC, where this role owns it (a role that does
-- not own the database cannot change its ACL, so it leaves it alone).
DO $$
DECLARE
    owner oid;
BEGIN
    SELECT datdba INTO owner FROM pg_database WHERE datname = current_database();
    IF pg_has_role(current_user, owner, 'MEMBER') THEN
        EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC',
                       current_database());
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO vpsmon_reader, vpsmon_ingest, vpsmon_query',
                       current_database());
    END IF;
    -- Since PostgreSQL 15 public belongs to pg_database_owner, of which the
    -- database owner is a member.
    SELECT nspowner INTO owner FROM pg_namespace WHERE nspname = 'public';
    IF pg_has_role(current_user, owner, 'MEMBER') THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    END IF;
END;
$$;
