-- One sample per VPS and timestamp, enforced where every command side meets:
-- the database. The unique index replaces the non-unique one on the same
-- columns, so an insert maintains one index, as before. The command side
-- keeps the first sample of a (vps_id, time) and reports the rest as
-- rejected (command_side/ingest.py).
--
-- Samples stored twice before this migration are reduced to one each. The
-- rows of a (vps_id, time) are deleted and one of them is inserted again, so
-- rollups recompute those buckets: on plain PostgreSQL the insert logs them
-- as late rows, on TimescaleDB both statements invalidate the continuous
-- aggregates. On TimescaleDB the delete decompresses the compressed batches
-- it touches, and the unique index covers compressed chunks too: TimescaleDB
-- checks uniqueness against their compressed rows when the index is created
-- and on each later insert into such a chunk.

CREATE TEMPORARY TABLE repeated_samples ON COMMIT DROP AS
SELECT DISTINCT ON (vps_id, time) *
FROM performance_metrics
WHERE (vps_id, time) IN (
    SELECT vps_id, time FROM performance_metrics GROUP BY vps_id, time HAVING count(*) > 1
)
ORDER BY vps_id, time;

DELETE FROM performance_metrics p
USING repeated_samples r
WHERE p.vps_id = r.vps_id AND p.time = r.time;

INSERT INTO performance_metrics SELECT * FROM repeated_samples;

CREATE UNIQUE INDEX performance_metrics_vps_id_time_key ON performance_metrics (vps_id, time DESC);
DROP INDEX performance_metrics_vps_id_time_idx;

-- A group redone for repeats corrects its batches' counts in the ledger.
GRANT UPDATE (accepted, rejected) ON ingested_batches TO vpsmon_ingest;
