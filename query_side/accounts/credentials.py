"""What every credential shares: 256 random bits in clear text, only a SHA-256 stored."""

from __future__ import annotations

import hashlib
import secrets

# Longer input is no token of ours; it is refused before hashing.
TOKEN_MAX = 200


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """256 random bits need no slow hash: a plain SHA-256 cannot be brute-forced."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def looks_like(token: str, prefix: str) -> bool:
    return token.startswith(prefix) and len(token) <= TOKEN_MAX


def storable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` and made safe for a PostgreSQL text value.

    Client input may hold NUL or lone surrogates, which PostgreSQL or UTF-8
    refuse; they are escaped rather than failing the request.
    """
    safe = text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    return safe.replace("\x00", "\\x00")
