"""The credentials vpsmon issues (agent, API and session tokens): a prefix that says
what the token is, then 256 random bits; only the token's SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_sha256(token: str) -> bytes:
    """256 random bits need no slow hash: a plain SHA-256 cannot be brute-forced.

    Any str hashes (lone surrogates from hostile input too), never matching a real token.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
