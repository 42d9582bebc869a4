"""Password hashing with scrypt (memory-hard), compared in constant time."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets

from vpsmon.constants import PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS
from vpsmon.errors import InvalidInputError

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_DKLEN = 32
_SALT_BYTES = 16


def validate_password(password: str) -> None:
    if len(password) < PASSWORD_MIN_CHARS:
        raise InvalidInputError(f"a password must be at least {PASSWORD_MIN_CHARS} characters")
    if len(password) > PASSWORD_MAX_CHARS:
        raise InvalidInputError(f"a password must be at most {PASSWORD_MAX_CHARS} characters")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        # surrogatepass: any str hashes (never matching a real password) instead of raising.
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=dklen,
        maxmem=128 * r * (n + p + 2) + 1024 * 1024,
    )


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt_b64$hash_b64`` with a fresh random salt (CPU-bound: ~50 ms)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _SCRYPT_DKLEN)
    return "$".join(
        (
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(digest).decode("ascii"),
        )
    )


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``, compared in constant time.

    A malformed hash (or parameters outside sane bounds) never matches.
    """
    try:
        scheme, n_text, r_text, p_text, salt_text, digest_text = encoded.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt = base64.b64decode(salt_text, validate=True)
        expected = base64.b64decode(digest_text, validate=True)
    except (ValueError, binascii.Error):
        return False
    if (
        scheme != "scrypt"
        or not 2 <= n <= 2**20
        or n & (n - 1)
        or not 1 <= r <= 32
        or not 1 <= p <= 16
        or not 16 <= len(expected) <= 64
    ):
        return False
    actual = _scrypt(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_or_dummy(password: str, encoded: str | None) -> bool:
    """Spend the same KDF time whether or not the user exists."""
    if encoded is None:
        verify_password(password, _dummy_hash())
        return False
    if len(password) > PASSWORD_MAX_CHARS:
        verify_password("", encoded)
        return False  # no stored password is that long
    return verify_password(password, encoded)
