"""What the query side checks of every credential before it looks one up
(vpsmon/tokens.py issues and hashes them)."""

from __future__ import annotations

# Longer input is no token of ours; it is refused before hashing.
TOKEN_MAX = 200


def looks_like(token: str, prefix: str) -> bool:
    return token.startswith(prefix) and len(token) <= TOKEN_MAX


def storable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` and made safe for a PostgreSQL text value.

    Client input may hold NUL or lone surrogates, which PostgreSQL or UTF-8
    refuse; they are escaped rather than failing the request.
    """
    safe = text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    return safe.replace("\x00", "\\x00")
