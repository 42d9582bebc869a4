"""Bounds of the agent settings a server may push, shared by server and agent.

Imports nothing, so the agent (without pydantic or asyncpg) reads the same
values as the server's settings, `vpsmon vps config` and the database's
CHECK constraints (db/migrations/0004_ingest.sql, which also say 1..3600
and 1..100000). An agent clamps a pushed AgentConfig into these bounds.
"""

# Seconds between two samples: at least one per hour keeps a VPS "online".
COLLECT_INTERVAL_MIN_S = 1
COLLECT_INTERVAL_MAX_S = 3600
# Seconds between two uploads (a full batch is sent early).
UPLOAD_INTERVAL_MIN_S = 1
UPLOAD_INTERVAL_MAX_S = 3600
# Snapshots in one PerformanceSnapshotBatch.
BATCH_SIZE_MIN = 1
BATCH_SIZE_MAX = 100_000
