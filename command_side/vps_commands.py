"""VPS lifecycle commands: each appends one event and updates its projections atomically."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from projections.vps_registry import VpsEvent, apply_vps_event

_TOKEN_PREFIX = "vpsm_"


class UnknownVpsError(LookupError):
    pass


@dataclass(frozen=True)
class IssuedToken:
    """An agent token in clear text: shown once, stored only as its hash."""

    vps_id: int
    token: str


def hash_agent_token(token: str) -> bytes:
    """Tokens carry 256 random bits, so a plain SHA-256 cannot be brute-forced."""
    return hashlib.sha256(token.encode()).digest()


def _new_token() -> str:
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


async def _append(
    conn: asyncpg.Connection, vps_id: int, event_type: str, payload: dict[str, Any]
) -> None:
    occurred_at: datetime = await conn.fetchval(
        "INSERT INTO vps_events (vps_id, event_type, payload) VALUES ($1, $2, $3::jsonb)"
        " RETURNING occurred_at",
        vps_id,
        event_type,
        json.dumps(payload),
    )
    await apply_vps_event(conn, VpsEvent(vps_id, event_type, payload, occurred_at))


async def register_vps(conn: asyncpg.Connection, name: str) -> IssuedToken:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValueError("a VPS name must be 1 to 200 characters")
    token = _new_token()
    async with conn.transaction():
        vps_id: int = await conn.fetchval("SELECT nextval('vps_id_seq')")
        await _append(
            conn,
            vps_id,
            "registered",
            {"name": name, "token_sha256": hash_agent_token(token).hex()},
        )
    return IssuedToken(vps_id, token)


async def _require_vps(conn: asyncpg.Connection, vps_id: int) -> None:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM vps WHERE id = $1)", vps_id):
        raise UnknownVpsError(f"no VPS with id {vps_id}")


async def rotate_agent_token(conn: asyncpg.Connection, vps_id: int) -> IssuedToken:
    """Issue a new token; the previous one stops authenticating at once."""
    token = _new_token()
    async with conn.transaction():
        await _require_vps(conn, vps_id)
        await _append(
            conn, vps_id, "token_rotated", {"token_sha256": hash_agent_token(token).hex()}
        )
    return IssuedToken(vps_id, token)


async def decommission_vps(conn: asyncpg.Connection, vps_id: int) -> None:
    """Remove a VPS; its measurements and rollups go with it."""
    async with conn.transaction():
        await _require_vps(conn, vps_id)
        await _append(conn, vps_id, "decommissioned", {})


async def vps_for_token(conn: asyncpg.Connection, token: str) -> int | None:
    """The VPS an active token belongs to, or None for an unknown or revoked token."""
    vps_id: int | None = await conn.fetchval(
        "SELECT vps_id FROM agent_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
        hash_agent_token(token),
    )
    return vps_id
