"""VPS lifecycle commands: each appends one event and updates its projections atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from projections.vps_registry import VpsEvent, apply_vps_event
from vpsmon import constants
from vpsmon.constants import (
    AGENT_TOKEN_PREFIX,
    VPS_AGENT_CONFIG_CHANGED,
    VPS_DECOMMISSIONED,
    VPS_EVENTS_CHANNEL,
    VPS_NAME_MAX_CHARS,
    VPS_REGISTERED,
    VPS_RENAMED,
    VPS_TOKEN_ROTATED,
)
from vpsmon.errors import InvalidInputError, UnknownVpsError
from vpsmon.storage.types import Connection, Queryable
from vpsmon.tokens import new_token, token_sha256

# Command sides listen on VPS_EVENTS_CHANNEL to close streams of revoked tokens
# and to push new agent configuration; PostgreSQL delivers it when the event
# commits. The payload is the event_id, a hint: listeners read the event itself.
COLLECT_BOUNDS = (constants.COLLECT_INTERVAL_MIN_S, constants.COLLECT_INTERVAL_MAX_S)
UPLOAD_BOUNDS = (constants.UPLOAD_INTERVAL_MIN_S, constants.UPLOAD_INTERVAL_MAX_S)
BATCH_BOUNDS = (constants.BATCH_SIZE_MIN, constants.BATCH_SIZE_MAX)


@dataclass(frozen=True)
class IssuedToken:
    """An agent token in clear text: shown once, stored only as its hash."""

    vps_id: int
    token: str


def hash_agent_token(token: str) -> bytes:
    return token_sha256(token)


def _new_token() -> str:
    return new_token(AGENT_TOKEN_PREFIX)


def valid_vps_name(name: str) -> str:
    """The name without surrounding blanks; InvalidInputError when empty, too long or with NUL."""
    name = name.strip()
    if not 1 <= len(name) <= VPS_NAME_MAX_CHARS or "\x00" in name:
        raise InvalidInputError(
            f"a VPS name must be 1 to {VPS_NAME_MAX_CHARS} characters, without NUL"
        )
    return name


async def _append(conn: Connection, vps_id: int, event_type: str, payload: dict[str, Any]) -> None:
    appended = await conn.fetchrow(
        "INSERT INTO vps_events (vps_id, event_type, payload) VALUES ($1, $2, $3::jsonb)"
        " RETURNING event_id, occurred_at",
        vps_id,
        event_type,
        json.dumps(payload),
    )
    assert appended is not None
    occurred_at: datetime = appended["occurred_at"]
    await apply_vps_event(conn, VpsEvent(vps_id, event_type, payload, occurred_at))
    await conn.execute("SELECT pg_notify($1, $2)", VPS_EVENTS_CHANNEL, str(appended["event_id"]))


async def register_vps(conn: Connection, name: str, owner_id: int | None = None) -> IssuedToken:
    """Register a VPS owned by user ``owner_id`` (None: no owner, only admins see it)."""
    name = valid_vps_name(name)
    token = _new_token()
    async with conn.transaction():
        if owner_id is not None and not await conn.fetchval(
            # FOR KEY SHARE: the owner cannot be deleted before this commits.
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE)",
            owner_id,
        ):
            raise InvalidInputError(f"no user with id {owner_id}")
        vps_id: int = await conn.fetchval("SELECT nextval('vps_id_seq')")
        await _append(
            conn,
            vps_id,
            VPS_REGISTERED,
            {
                "name": name,
                "token_sha256": hash_agent_token(token).hex(),
                "owner_id": owner_id,
            },
        )
    return IssuedToken(vps_id, token)


async def _require_vps(conn: Connection, vps_id: int) -> None:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM vps WHERE id = $1)", vps_id):
        raise UnknownVpsError(f"no VPS with id {vps_id}")


async def rotate_agent_token(conn: Connection, vps_id: int) -> IssuedToken:
    """Issue a new token; the previous one stops authenticating at once."""
    token = _new_token()
    async with conn.transaction():
        await _require_vps(conn, vps_id)
        await _append(
            conn, vps_id, VPS_TOKEN_ROTATED, {"token_sha256": hash_agent_token(token).hex()}
        )
    return IssuedToken(vps_id, token)


async def revoke_agent_token(conn: Connection, vps_id: int) -> None:
    """Leave the VPS without an active token: its agent is refused (and its open stream
    closed) until `rotate_agent_token` issues a new one.

    A `token_rotated` event to no token, so that every command side, which closes
    the streams of a VPS whose token rotated, reacts at once.
    """
    async with conn.transaction():
        await _require_vps(conn, vps_id)
        await _append(conn, vps_id, VPS_TOKEN_ROTATED, {"token_sha256": None})


async def rename_vps(conn: Connection, vps_id: int, name: str) -> str:
    """Give a VPS a new name (a `renamed` event); returns the name as stored."""
    name = valid_vps_name(name)
    async with conn.transaction():
        await _require_vps(conn, vps_id)
        await _append(conn, vps_id, VPS_RENAMED, {"name": name})
    return name


async def configure_agent(
    conn: Connection,
    vps_id: int,
    *,
    collect_interval_seconds: int | None = None,
    upload_interval_seconds: int | None = None,
    upload_batch_max_size: int | None = None,
) -> None:
    """Override the server's default AgentConfig for one VPS (None: use the default)."""
    for name, value, lower, upper in (
        ("collect interval", collect_interval_seconds, *COLLECT_BOUNDS),
        ("upload interval", upload_interval_seconds, *UPLOAD_BOUNDS),
        ("batch size", upload_batch_max_size, *BATCH_BOUNDS),
    ):
        if value is not None and not lower <= value <= upper:
            raise InvalidInputError(f"the {name} must be between {lower} and {upper}")
    async with conn.transaction():
        await _require_vps(conn, vps_id)
        await _append(
            conn,
            vps_id,
            VPS_AGENT_CONFIG_CHANGED,
            {
                "collect_interval_seconds": collect_interval_seconds,
                "upload_interval_seconds": upload_interval_seconds,
                "upload_batch_max_size": upload_batch_max_size,
            },
        )


async def decommission_vps(conn: Connection, vps_id: int) -> None:
    """Remove a VPS; its measurements and rollups go with it."""
    async with conn.transaction():
        await _require_vps(conn, vps_id)
        await _append(conn, vps_id, VPS_DECOMMISSIONED, {})


async def vps_for_token(conn: Queryable, token: str) -> int | None:
    """The VPS an active token belongs to, or None for an unknown or revoked token."""
    vps_id: int | None = await conn.fetchval(
        "SELECT vps_id FROM agent_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
        hash_agent_token(token),
    )
    return vps_id


@dataclass(frozen=True)
class AgentTokenInfo:
    """What `vpsmon token list` shows of an agent token: its hash names it, never the token."""

    sha256_hex: str
    vps_id: int
    vps_name: str
    created_at: datetime
    revoked_at: datetime | None


async def list_agent_tokens(conn: Queryable) -> list[AgentTokenInfo]:
    rows = await conn.fetch(
        "SELECT encode(t.token_sha256, 'hex') AS sha256_hex, t.vps_id, v.name AS vps_name,"
        " t.created_at, t.revoked_at FROM agent_tokens t JOIN vps v ON v.id = t.vps_id"
        " ORDER BY t.vps_id, t.created_at"
    )
    return [AgentTokenInfo(**dict(row)) for row in rows]
