"""Small helpers for PostgreSQL connection URLs."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database)))


def database_name(dsn: str) -> str:
    return unquote(urlsplit(dsn).path.lstrip("/"))
