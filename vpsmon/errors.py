"""Every error vpsmon raises on purpose, in one tree.

Imports nothing, so the agent can use it without the server extra.

    VpsmonError
    └── ConcurrencyError     another writer appended to the same VPS stream first
"""

__all__ = ["ConcurrencyError", "VpsmonError"]


class VpsmonError(Exception):
    """The base of every error vpsmon raises on purpose."""


class ConcurrencyError(VpsmonError):
    """Raised when an event is appended at a version another writer took first; retryable."""
