-- The live agent stream of each VPS, claimed at the handshake (the newest
-- claim wins). Every command side ends its streams that lost their claim, so
-- a VPS has one live stream across any number of command sides. Holds no
-- secret; connected_at, hostname and agent_version also tell who is connected.
CREATE TABLE agent_streams (
    vps_id        integer PRIMARY KEY REFERENCES vps (id) ON DELETE CASCADE,
    stream_id     uuid NOT NULL,
    hostname      text NOT NULL DEFAULT '',
    agent_version text NOT NULL DEFAULT '',
    connected_at  timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON agent_streams TO vpsmon_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON agent_streams TO vpsmon_ingest;
-- Command sides read which event a NOTIFY named (never the payload, which
-- holds token hashes).
GRANT SELECT (event_id, vps_id, event_type) ON vps_events TO vpsmon_ingest;
