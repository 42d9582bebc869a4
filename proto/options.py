"""Transport settings the agent and the command side must agree on.

gRPC closes a connection whose peer pings more often than the receiver
allows ("too_many_pings"), so the server's minimum ping interval must not
exceed the client's keepalive time; both read them from here.
"""

from __future__ import annotations

# Largest message either side accepts; a batch of the maximum size with many
# interfaces per snapshot stays well below it.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# Client pings every 20 s without traffic and gives up after 10 s of silence.
CLIENT_KEEPALIVE_TIME_MS = 20_000
KEEPALIVE_TIMEOUT_MS = 10_000
# Server pings idle clients every 30 s and accepts client pings every 10 s.
SERVER_KEEPALIVE_TIME_MS = 30_000
SERVER_MIN_PING_INTERVAL_MS = 10_000

CLIENT_CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", CLIENT_KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # One connection per channel: several agents in one process (tests, load
    # runs) must not share one connection and its stream limit.
    ("grpc.use_local_subchannel_pool", 1),
]

# An agent needs one stream per connection; a few more allow a reconnect overlap.
SERVER_MAX_STREAMS_PER_CONNECTION = 4
# Connections without a stream are closed after 5 minutes; every connection
# is recycled daily (its stream gets 5 minutes to finish, then the agent
# reconnects and re-sends), which also spreads agents over new command sides.
SERVER_MAX_CONNECTION_IDLE_MS = 5 * 60_000
SERVER_MAX_CONNECTION_AGE_MS = 24 * 3600_000
SERVER_MAX_CONNECTION_AGE_GRACE_MS = 5 * 60_000

SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_concurrent_streams", SERVER_MAX_STREAMS_PER_CONNECTION),
    ("grpc.max_connection_idle_ms", SERVER_MAX_CONNECTION_IDLE_MS),
    ("grpc.max_connection_age_ms", SERVER_MAX_CONNECTION_AGE_MS),
    ("grpc.max_connection_age_grace_ms", SERVER_MAX_CONNECTION_AGE_GRACE_MS),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", SERVER_MIN_PING_INTERVAL_MS),
    ("grpc.http2.max_ping_strikes", 2),
]

# A RESOURCE_EXHAUSTED status from the command side ends its details with
# "retry-after-s=<seconds>"; the agent waits at least that long to reconnect.
RETRY_AFTER_FIELD = "retry-after-s="
