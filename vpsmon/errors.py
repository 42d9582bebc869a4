"""Every error vpsmon raises on purpose, in one tree.

Imports nothing, so the agent can use it without the server extra. Code
catches a branch to handle a kind of failure; the edges turn a branch into an
answer in one table each: HTTP statuses in query_side/errors.py, gRPC status
codes in command_side/grpc_status.py, one line on stderr in vpsmon/cli/main.py.
Database driver errors become StorageError branches in vpsmon/storage/errors.py
and nowhere else.

    VpsmonError
    ├── ConfigError                  settings or an agent config file are unusable
    ├── InvalidInputError            input breaks a rule (also a ValueError)
    │   ├── InvalidBatchError        a whole snapshot batch is unusable
    │   ├── IntervalError            a timeseries request cannot be served
    │   ├── UnsupportedMediaTypeError  a request body of a type the server does not read
    │   └── InvalidBodyError         a request body without the expected shape
    ├── NotFoundError                what was named does not exist (also a LookupError)
    │   ├── UnknownVpsError
    │   └── UnknownUserError
    ├── AuthenticationError          the caller did not prove who they are
    │   ├── NotAuthenticatedError    no credential, or an invalid or expired one
    │   ├── LoginRefused             wrong username or password
    │   │   └── LoginThrottledError  too many failed logins; retry later
    │   └── AgentTokenRejectedError  an unknown or revoked agent token
    ├── StreamError                  the agent stream cannot go on; the agent reconnects
    │   ├── ProtocolError            a message the wire protocol does not allow here
    │   ├── HandshakeTimeoutError    no handshake in time
    │   ├── OverloadedError          too much at once; retry after a while
    │   ├── StreamReplacedError      a newer stream of the same VPS took over
    │   └── ServiceStoppingError     the server is shutting down
    ├── StorageError                 the database failed or refused
    │   ├── StorageUnavailableError  not reachable now; retry
    │   ├── ConcurrencyError         another writer appended to the same VPS stream first
    │   ├── ConstraintViolationError a constraint refused a row
    │   │   ├── DuplicateKeyError    a unique one
    │   │   └── MissingReferenceError  a foreign key: the row refers to one that is gone
    │   ├── MigrationError           the schema cannot be brought up to date safely
    │   ├── BackendUnavailableError  the backend asked for cannot be set up
    │   └── EmbeddedPostgresError    the embedded PostgreSQL cannot be run
    ├── SpoolCorruptError            an agent spool file cannot be trusted
    └── CommandError                 a `vpsmon` subcommand failed (one line, no traceback)
"""

__all__ = [
    "AgentTokenRejectedError",
    "AuthenticationError",
    "BackendUnavailableError",
    "CommandError",
    "ConcurrencyError",
    "ConfigError",
    "ConstraintViolationError",
    "DuplicateKeyError",
    "EmbeddedPostgresError",
    "HandshakeTimeoutError",
    "IntervalError",
    "InvalidBatchError",
    "InvalidBodyError",
    "InvalidInputError",
    "LoginRefused",
    "LoginThrottledError",
    "MigrationError",
    "MissingReferenceError",
    "NotAuthenticatedError",
    "NotFoundError",
    "OverloadedError",
    "ProtocolError",
    "ServiceStoppingError",
    "SpoolCorruptError",
    "StorageError",
    "StorageUnavailableError",
    "StreamError",
    "StreamReplacedError",
    "UnknownUserError",
    "UnknownVpsError",
    "UnsupportedMediaTypeError",
    "VpsmonError",
]


class VpsmonError(Exception):
    """The base of every error vpsmon raises on purpose."""


class ConfigError(VpsmonError):
    """The configuration is unusable; the message says what to fix."""


# -- Input ----------------------------------------------------------------


class InvalidInputError(VpsmonError, ValueError):
    """Raised when input breaks a rule (a name, a password, a bound); the message names the
    rule. Also a ValueError, as Python's own validation errors are."""


class InvalidBatchError(InvalidInputError):
    """Raised when a whole snapshot batch is unusable (bad id, too many snapshots)."""


class IntervalError(InvalidInputError):
    """Raised when a timeseries request cannot be served; the message is shown to API users."""


class UnsupportedMediaTypeError(InvalidInputError):
    """Raised for a request body of a media type the server does not read."""


class InvalidBodyError(InvalidInputError):
    """Raised for a request body that does not have the documented shape."""


class NotFoundError(VpsmonError, LookupError):
    """Raised when what was named does not exist, or is not the caller's to see."""


class UnknownVpsError(NotFoundError):
    """Raised for a VPS id with no VPS (never registered, or decommissioned)."""


class UnknownUserError(NotFoundError):
    """Raised for a username or user id with no user."""


# -- Who is asking --------------------------------------------------------


class AuthenticationError(VpsmonError):
    """Raised when the caller did not prove who they are."""


class NotAuthenticatedError(AuthenticationError):
    """Raised for a request without a credential, or with an invalid or expired one."""


class LoginRefused(AuthenticationError):
    """Raised when a login did not succeed: bad credentials, or throttled."""

    def __init__(self, reason: str, retry_after_seconds: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds


class LoginThrottledError(LoginRefused):
    """Raised while a login must wait after failed ones; ``retry_after_seconds`` says how long."""

    def __init__(self, reason: str, retry_after_seconds: int) -> None:
        super().__init__(reason, retry_after_seconds)


class AgentTokenRejectedError(AuthenticationError):
    """Raised when an agent's token is unknown or revoked, or its VPS is gone."""


# -- The agent stream -----------------------------------------------------


class StreamError(VpsmonError):
    """Raised when the agent stream cannot go on: it ends, and the agent reconnects."""


class ProtocolError(StreamError):
    """Raised when a peer sends a message the wire protocol does not allow at that point."""


class HandshakeTimeoutError(StreamError):
    """Raised when a stream sends no handshake within the allowed time."""


class OverloadedError(StreamError):
    """Raised when the server refuses work for now; ``retry_after_s`` says for how long."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StreamReplacedError(StreamError):
    """Raised on an older stream of a VPS when a newer handshake claims the VPS."""


class ServiceStoppingError(StreamError):
    """Raised on streams that a stopping server ends (the agent reconnects elsewhere)."""


# -- Storage --------------------------------------------------------------


class StorageError(VpsmonError):
    """Raised when the database failed or refused a statement."""


class StorageUnavailableError(StorageError):
    """Raised when the database cannot be reached now; nothing was committed, retry later."""


class ConcurrencyError(StorageError):
    """Raised when an event is appended at a version another writer took first; retryable."""


class ConstraintViolationError(StorageError):
    """Raised when a constraint refused a row; ``constraint`` names it (if the server did)."""

    def __init__(self, message: str, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class DuplicateKeyError(ConstraintViolationError):
    """Raised when a unique constraint refused a row."""


class MissingReferenceError(ConstraintViolationError):
    """Raised when a row refers to one that does not exist (a foreign key)."""


class MigrationError(StorageError):
    """Raised when the schema cannot be brought up to date safely."""


class BackendUnavailableError(StorageError):
    """Raised when the backend asked for (or the one the server offers) cannot be set up."""


class EmbeddedPostgresError(StorageError):
    """Raised when the embedded PostgreSQL cannot be started, joined or stopped."""


# -- Elsewhere ------------------------------------------------------------


class SpoolCorruptError(VpsmonError):
    """Raised for an agent spool file that cannot be trusted (truncated, bit rot, foreign)."""


class CommandError(VpsmonError):
    """Raised for a `vpsmon` subcommand failure to report as one line, without a traceback."""
