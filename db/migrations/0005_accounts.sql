-- Accounts and access control for the query side: users, their API tokens and
-- login sessions, failed logins (rate limiting shared by every query-side
-- process), and the owner of each VPS. None of these tables is granted to
-- vpsmon_reader: they hold password hashes and token hashes.

CREATE TABLE users (
    id            serial PRIMARY KEY,
    username      text NOT NULL CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    -- "scrypt$n$r$p$salt_b64$hash_b64"; never a clear-text password.
    password_hash text NOT NULL,
    is_admin      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Usernames are unique regardless of case: "Alice" and "alice" are one user.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- API tokens carry 256 random bits; only their SHA-256 is stored.
CREATE TABLE api_tokens (
    token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    user_id      integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

-- Login sessions (the cookie's value is a random token; only its SHA-256 is stored).
CREATE TABLE sessions (
    session_sha256 bytea PRIMARY KEY CHECK (length(session_sha256) = 32),
    user_id        integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Failed logins within the rate-limit window, by (lower-cased) username and by
-- client address; rows older than a day are pruned.
CREATE TABLE login_failures (
    username  text NOT NULL,
    client_ip text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_username_idx ON login_failures (username, failed_at);
CREATE INDEX login_failures_client_ip_idx ON login_failures (client_ip, failed_at);
CREATE INDEX login_failures_failed_at_idx ON login_failures (failed_at);

-- Each VPS has an owner, set by its `registered` event. NULL (no owner, or the
-- owner was deleted): only admins see it.
ALTER TABLE vps ADD COLUMN owner_id integer REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX vps_owner_id_idx ON vps (owner_id);
