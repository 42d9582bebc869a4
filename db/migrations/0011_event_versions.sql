-- Versioned VPS streams, projection tracking, and owners that change only by
-- events.
--
-- Each VPS's events form one stream numbered 1, 2, 3, ... A command reads the
-- stream, decides, and appends at version + 1 (command_side/vps_commands.py);
-- UNIQUE (vps_id, version) makes the second of two writers that read the same
-- version fail, which vpsmon/storage/event_log.py reports as ConcurrencyError.
--
-- projection_tracking holds the last event each projection applied, written
-- in the same transaction as the projection's rows, so that a follower goes on
-- from the next one. 'vps_registry' is vps, agent_tokens and vps_agent_config
-- (projections/vps_registry.py). vps_latest and the rollups follow
-- performance_metrics, which has no event ids: they track time instead
-- (vpsmon_rollups watermarks and invalidations, TimescaleDB's own).
--
-- Upgrade of the events written before this migration:
--   * versions are numbered per VPS in event order, starting at 1;
--   * owners: removing a user used to empty the owner of their VPSes by
--     ON DELETE SET NULL, without an event, so the log still named the removed
--     user. Each VPS whose owner differs from what its events say gets one
--     owner_changed event now, taken from the live table (the one fact only
--     the live tables held). From now on the foreign key refuses to remove an
--     owner: `vpsmon user remove` first gives their VPSes up by events;
--   * registered events from before 0005 carry no owner_id: the projection
--     reads them as no owner (its upcast), as 0005 itself did;
--   * token hashes: every registered and token_rotated event vpsmon ever wrote
--     carries token_sha256 (null for a revocation), so nothing is backfilled.
-- After this, the registry can be rebuilt from vps_events alone.
--
-- No grants change: only the owner (the CLI) appends events and maintains
-- projections; vpsmon_ingest keeps reading event_id, vps_id and event_type
-- (0009), and vpsmon_reader sees neither vps_events nor projection_tracking.

ALTER TABLE vps_events ADD COLUMN version integer;

-- The log is append-only; numbering the existing rows is the one exception.
ALTER TABLE vps_events DISABLE TRIGGER vps_events_append_only;
UPDATE vps_events e
SET version = numbered.version
FROM (
    SELECT event_id, row_number() OVER (PARTITION BY vps_id ORDER BY event_id) AS version
    FROM vps_events
) numbered
WHERE e.event_id = numbered.event_id;
ALTER TABLE vps_events ENABLE TRIGGER vps_events_append_only;

ALTER TABLE vps_events
    ALTER COLUMN version SET NOT NULL,
    ADD CONSTRAINT vps_events_version_check CHECK (version >= 1),
    ADD CONSTRAINT vps_events_vps_id_version_key UNIQUE (vps_id, version);
-- The unique index serves every per-VPS read; the old index is redundant.
DROP INDEX vps_events_vps_id_idx;

ALTER TABLE vps_events DROP CONSTRAINT vps_events_event_type_check;
ALTER TABLE vps_events ADD CONSTRAINT vps_events_event_type_check CHECK (event_type IN (
    'registered', 'renamed', 'token_rotated', 'agent_config_changed', 'owner_changed',
    'decommissioned'
));

-- Owners removed without an event: record each change once (see above). The
-- projection sets updated_at to an owner change's time, so the row does too.
WITH registered AS (
    SELECT DISTINCT ON (vps_id) vps_id, (payload ->> 'owner_id')::integer AS owner_id
    FROM vps_events
    WHERE event_type = 'registered'
    ORDER BY vps_id, event_id DESC
), recorded AS (
    INSERT INTO vps_events (vps_id, version, event_type, payload)
    SELECT v.id,
           (SELECT max(e.version) + 1 FROM vps_events e WHERE e.vps_id = v.id),
           'owner_changed',
           jsonb_build_object('owner_id', v.owner_id)
    FROM vps v
    JOIN registered r ON r.vps_id = v.id
    WHERE r.owner_id IS DISTINCT FROM v.owner_id
    ORDER BY v.id
    RETURNING vps_id, occurred_at
)
UPDATE vps SET updated_at = recorded.occurred_at
FROM recorded
WHERE vps.id = recorded.vps_id;

ALTER TABLE vps
    DROP CONSTRAINT vps_owner_id_fkey,
    ADD CONSTRAINT vps_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id);

CREATE TABLE projection_tracking (
    projection    text PRIMARY KEY,
    last_event_id bigint NOT NULL CHECK (last_event_id >= 0)
);
-- Until now every event was applied in its own transaction: the registry is
-- current up to the newest event.
INSERT INTO projection_tracking (projection, last_event_id)
SELECT 'vps_registry', coalesce(max(event_id), 0) FROM vps_events;
