"""The one boundary where the database driver's errors become vpsmon's.

Code above storage runs its statements inside ``translated_errors()`` and
catches branches of vpsmon.errors.StorageError; it never names an asyncpg
exception. The most specific translation wins, and the driver's error stays
chained as ``__cause__`` for the logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from vpsmon.errors import (
    ConcurrencyError,
    DuplicateKeyError,
    MissingReferenceError,
    StorageError,
    StorageUnavailableError,
)

# Errors that mean "the database is not there right now", as opposed to a
# problem with one statement.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
# Unique constraints whose violation is a lost race for a version, not a bad row.
VERSION_CONSTRAINTS = frozenset({"vps_events_vps_id_version_key"})
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


def storage_error(error: BaseException) -> StorageError:
    """vpsmon's error for a database failure (a connection error or any PostgresError)."""
    message = str(error) or type(error).__name__
    if isinstance(error, CONNECTION_ERRORS):
        return StorageUnavailableError(message)
    if isinstance(error, asyncpg.UniqueViolationError):
        constraint = getattr(error, "constraint_name", None)
        if constraint in VERSION_CONSTRAINTS:
            return ConcurrencyError(message)
        return DuplicateKeyError(message, constraint)
    if isinstance(error, asyncpg.ForeignKeyViolationError):
        return MissingReferenceError(message, getattr(error, "constraint_name", None))
    return StorageError(message)


@contextmanager
def translated_errors() -> Iterator[None]:
    """Raise vpsmon's StorageError branches for the driver's errors in the block."""
    try:
        yield
    except _DRIVER_ERRORS as error:
        raise storage_error(error) from error
