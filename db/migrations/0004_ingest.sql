-- Idempotent ingest and per-VPS agent configuration.

-- One row per committed batch: a re-sent batch_id finds its row and inserts
-- nothing (exactly-once rows from at-least-once delivery). Rows older than
-- raw retention are pruned with the measurements they describe.
CREATE TABLE ingested_batches (
    vps_id       integer NOT NULL REFERENCES vps (id) ON DELETE CASCADE,
    batch_id     uuid NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    accepted     integer NOT NULL,
    rejected     integer NOT NULL,
    PRIMARY KEY (vps_id, batch_id)
);
CREATE INDEX ingested_batches_committed_at_idx ON ingested_batches (committed_at);

-- Operators change an agent's sampling and upload settings with an event;
-- the command side pushes the result to the connected agent.
ALTER TABLE vps_events DROP CONSTRAINT vps_events_event_type_check;
ALTER TABLE vps_events ADD CONSTRAINT vps_events_event_type_check CHECK (event_type IN (
    'registered', 'renamed', 'token_rotated', 'decommissioned', 'agent_config_changed'
));

-- Projection: per-VPS overrides of the server's default AgentConfig (NULL:
-- use the default).
CREATE TABLE vps_agent_config (
    vps_id                  integer PRIMARY KEY REFERENCES vps (id) ON DELETE CASCADE,
    collect_interval_seconds integer CHECK (collect_interval_seconds BETWEEN 1 AND 3600),
    upload_interval_seconds  integer CHECK (upload_interval_seconds BETWEEN 1 AND 3600),
    upload_batch_max_size    integer CHECK (upload_batch_max_size BETWEEN 1 AND 100000)
);
