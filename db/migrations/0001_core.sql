-- Core tables shared by both backends: the VPS event log and its projections,
-- agent credentials, and the measurement event log.

-- VPS lifecycle events. Append-only: the `vps` and `agent_tokens` tables are
-- projections of this log and `vpsmon projections rebuild` replays it.
CREATE SEQUENCE vps_id_seq AS integer;

CREATE TABLE vps_events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vps_id      integer NOT NULL,
    event_type  text NOT NULL
        CHECK (event_type IN ('registered', 'renamed', 'token_rotated', 'decommissioned')),
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vps_events_vps_id_idx ON vps_events (vps_id, event_id);

CREATE FUNCTION vps_events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'vps_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER vps_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON vps_events
    FOR EACH STATEMENT EXECUTE FUNCTION vps_events_are_append_only();

-- Projection: one row per VPS that has not been decommissioned. Holds no secret.
CREATE TABLE vps (
    id          integer PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- Projection: agent credentials, kept apart from `vps` so that read-only SQL
-- users never see them. Only a SHA-256 of each (high-entropy) token is stored.
CREATE TABLE agent_tokens (
    token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    vps_id       integer NOT NULL REFERENCES vps (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX agent_tokens_one_active_per_vps
    ON agent_tokens (vps_id) WHERE revoked_at IS NULL;

-- The measurement event log: rows are only ever appended (and removed by
-- retention or with their VPS).
CREATE TABLE performance_metrics (
    time               timestamptz NOT NULL,
    vps_id             integer NOT NULL REFERENCES vps (id) ON DELETE CASCADE,
    cpu_usage_percent  double precision NOT NULL,
    memory_usage_bytes bigint NOT NULL,
    memory_total_bytes bigint NOT NULL,
    disk_io_read_bps   bigint NOT NULL,
    disk_io_write_bps  bigint NOT NULL,
    network_rx_bps     bigint NOT NULL,
    network_tx_bps     bigint NOT NULL
);
CREATE INDEX performance_metrics_vps_id_time_idx ON performance_metrics (vps_id, time DESC);

-- Projection: the newest snapshot per VPS, updated in the append transaction.
CREATE TABLE vps_latest (
    vps_id             integer PRIMARY KEY REFERENCES vps (id) ON DELETE CASCADE,
    time               timestamptz NOT NULL,
    cpu_usage_percent  double precision NOT NULL,
    memory_usage_bytes bigint NOT NULL,
    memory_total_bytes bigint NOT NULL,
    disk_io_read_bps   bigint NOT NULL,
    disk_io_write_bps  bigint NOT NULL,
    network_rx_bps     bigint NOT NULL,
    network_tx_bps     bigint NOT NULL
);

-- Retention periods, written by `vpsmon migrate` from the settings so that
-- every process applies the same ones.
CREATE TABLE retention_policy (
    relation text PRIMARY KEY,
    keep     interval NOT NULL CHECK (keep > interval '0')
);
