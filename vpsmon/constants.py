"""Every fixed limit and name that more than one part of vpsmon must agree on.

Imports nothing, so the agent (without pydantic or asyncpg) reads the same
values as the server, the CLI and the UI (`python -m vpsmon.ui_constants`
writes the ones it shows into ui/src/lib/generated/). Units end each name
(`_s`, `_bytes`, `_chars`). Values an operator may change are settings
(vpsmon/settings.py), whose defaults may come from here.

The applied SQL migrations repeat some of these (CHECK constraints, a lock key
in a trigger); they are frozen, and tests/test_constants.py holds them equal.
"""

# -- Agent configuration the server may push (AgentConfig) ------------------
# Seconds between two samples: at least one per hour keeps a VPS "online"
# (db/migrations/0004_ingest.sql: CHECK ... BETWEEN 1 AND 3600).
COLLECT_INTERVAL_MIN_S = 1
COLLECT_INTERVAL_MAX_S = 3600
# Seconds between two uploads (a full batch is sent early).
UPLOAD_INTERVAL_MIN_S = 1
UPLOAD_INTERVAL_MAX_S = 3600
# Snapshots in one PerformanceSnapshotBatch.
BATCH_SIZE_MIN = 1
BATCH_SIZE_MAX = 100_000
# What an agent runs with until its server says otherwise, and what a server
# says unless configured (VPSMON_AGENT_COLLECT_INTERVAL etc.).
DEFAULT_COLLECT_INTERVAL_S = 1
DEFAULT_UPLOAD_INTERVAL_S = 1
DEFAULT_BATCH_SIZE = 60

# -- The agent stream ---------------------------------------------------------
# Batches of one stream on their way at once: the agent sends no more before
# an ack, and the command side validates and commits no more concurrently.
BATCHES_IN_FLIGHT_PER_STREAM = 16
# Snapshots stamped further ahead than this (a clock that is off) are rejected.
FUTURE_TOLERANCE_S = 5 * 60
# The agent heartbeats an idle stream, waits this long for the handshake ack
# and for each batch's ack before it reconnects.
AGENT_HEARTBEAT_INTERVAL_S = 15.0
AGENT_HANDSHAKE_TIMEOUT_S = 30.0
AGENT_ACK_TIMEOUT_S = 120.0
# Reconnects back off exponentially from the base up to the cap (full jitter);
# a server's retry-after is obeyed up to its own cap.
RECONNECT_BACKOFF_BASE_S = 0.5
RECONNECT_BACKOFF_CAP_S = 30.0
RETRY_AFTER_MAX_S = 300.0
# The command side, stopping, lets its streams finish this long.
COMMAND_SIDE_DRAIN_S = 10.0

# -- Default addresses (settings `VPSMON_GRPC_LISTEN`, `VPSMON_HTTP_LISTEN`) --
DEFAULT_GRPC_ADDRESS = "127.0.0.1:50051"
DEFAULT_HTTP_ADDRESS = "127.0.0.1:8000"

# -- Whether a VPS is reporting ----------------------------------------------
# Offline after this many missed uploads (or collections, whichever is
# slower), and never sooner than the minimum.
ONLINE_MISSED_UPLOADS = 3
ONLINE_WINDOW_MIN_S = 15

# -- Accounts -----------------------------------------------------------------
# db/migrations/0005_accounts.sql: CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$').
USERNAME_MAX_CHARS = 64
USERNAME_CHARACTERS = "A-Za-z0-9_.@-"  # a regular-expression character class body
USERNAME_PATTERN = f"[{USERNAME_CHARACTERS}]{{1,{USERNAME_MAX_CHARS}}}"  # whole name
USERNAME_RULE = f"1 to {USERNAME_MAX_CHARS} characters: letters, digits, '_', '.', '@' or '-'"
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 1024
# A login session, and the cookie that carries it, last this long.
SESSION_LIFETIME_S = 7 * 86_400
SESSION_COOKIE = "vpsmon_session"
# Credentials carry a prefix that says what they are.
AGENT_TOKEN_PREFIX = "vpsm_"
API_TOKEN_PREFIX = "vpsa_"
SESSION_TOKEN_PREFIX = "vpss_"
VPS_NAME_MAX_CHARS = 200

# -- PostgreSQL ---------------------------------------------------------------
# Servers give up connecting after this long: a database that restarts must
# not stall ingest or requests (they fail fast and are retried).
DATABASE_CONNECT_TIMEOUT_S = 5.0
# Largest values of the integer types ids and byte counts are stored in.
PG_INTEGER_MAX = 2**31 - 1
PG_BIGINT_MAX = 2**63 - 1
# Database roles (db/migrations/0003_reader_role.sql, 0007_server_roles.sql).
READER_ROLE = "vpsmon_reader"
INGEST_ROLE = "vpsmon_ingest"
QUERY_ROLE = "vpsmon_query"

# Advisory lock keys, all 7369000xx so that they are recognisable in pg_locks.
ROLLUP_THRESHOLD_LOCK_KEY = 736900001  # also in log_late_rows() (0002_rollups.postgresql.sql)
ROLLUP_REFRESH_LOCK_KEY = 736900002
MIGRATION_LOCK_KEY = 736900003
RETENTION_LOCK_KEY = 736900004
MAINTENANCE_LEADER_LOCK_KEY = 736900005  # held by the one elected maintenance runner
# Two-key pg_advisory_xact_lock(class, hashtext(...)) namespaces of login throttling.
LOGIN_ADDRESS_LOCK_CLASS = 736900011
LOGIN_PAIR_LOCK_CLASS = 736900012

# NOTIFY channels; each payload only names ids, listeners re-read the tables.
LATEST_CHANNEL = "vpsmon_latest"  # VPS ids whose vps_latest row moved forward
VPS_EVENTS_CHANNEL = "vpsmon_vps_events"  # event_ids appended to vps_events
AGENT_STREAMS_CHANNEL = "vpsmon_agent_streams"  # VPS ids whose stream claim changed

# -- The VPS event log (vps_events.event_type) --------------------------------
VPS_REGISTERED = "registered"
VPS_RENAMED = "renamed"
VPS_TOKEN_ROTATED = "token_rotated"
VPS_AGENT_CONFIG_CHANGED = "agent_config_changed"
VPS_OWNER_CHANGED = "owner_changed"
VPS_DECOMMISSIONED = "decommissioned"
VPS_EVENT_TYPES = (
    VPS_REGISTERED,
    VPS_RENAMED,
    VPS_TOKEN_ROTATED,
    VPS_AGENT_CONFIG_CHANGED,
    VPS_OWNER_CHANGED,
    VPS_DECOMMISSIONED,
)

# -- The live stream (Server-Sent Events) ------------------------------------
# A comment line this often keeps proxies from closing an idle stream; the
# viewer's credential is re-checked this often, and while the database cannot
# answer the stream goes on for the grace period, then ends (it fails closed).
SSE_KEEPALIVE_S = 15.0
SSE_CREDENTIAL_RECHECK_S = 2.0
SSE_CREDENTIAL_GRACE_S = 30.0
