"""Small helpers for PostgreSQL connection URLs."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database)))


def database_name(dsn: str) -> str:
    return unquote(urlsplit(dsn).path.lstrip("/"))


def with_login(dsn: str, user: str, password: str) -> str:
    """The same server and database, another login role."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    login = f"{quote(user, safe='')}:{quote(password, safe='')}@"
    return urlunsplit(parts._replace(netloc=login + host))
