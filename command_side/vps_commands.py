"""VPS lifecycle commands: load the VPS's stream, decide, append the next version.

Each command appends one event at `version + 1` and, in the same transaction,
brings the registry projection up to date and announces the event. Two
commands that read the same version race for one slot: the loser's append
fails with ConcurrencyError, and `run_vps_command` reloads and decides again, a bounded
number of times (never forever: a conflict is reported, retryable).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from command_side.vps_stream import NewVpsEvent, VpsState, load_vps
from projections.vps_registry import catch_up
from vpsmon import constants
from vpsmon.constants import (
    AGENT_TOKEN_PREFIX,
    VPS_AGENT_CONFIG_CHANGED,
    VPS_DECOMMISSIONED,
    VPS_EVENTS_CHANNEL,
    VPS_NAME_MAX_CHARS,
    VPS_OWNER_CHANGED,
    VPS_REGISTERED,
    VPS_RENAMED,
    VPS_TOKEN_ROTATED,
)
from vpsmon.errors import ConcurrencyError, InvalidInputError, UnknownVpsError
from vpsmon.storage.event_log import StoredVpsEvent, append_vps_event
from vpsmon.storage.types import Connection, Queryable
from vpsmon.tokens import new_token, token_sha256

logger = logging.getLogger(__name__)

COLLECT_BOUNDS = (constants.COLLECT_INTERVAL_MIN_S, constants.COLLECT_INTERVAL_MAX_S)
UPLOAD_BOUNDS = (constants.UPLOAD_INTERVAL_MIN_S, constants.UPLOAD_INTERVAL_MAX_S)
BATCH_BOUNDS = (constants.BATCH_SIZE_MIN, constants.BATCH_SIZE_MAX)
# How many times a command decides anew after losing a race for its version.
COMMAND_ATTEMPTS = 3

# What a command appends, given the VPS as its events leave it (None: nothing).
Decide = Callable[[VpsState], Awaitable[NewVpsEvent | None]]


@dataclass(frozen=True)
class IssuedToken:
    """An agent token in clear text: shown once, stored only as its hash."""

    vps_id: int
    token: str


def hash_agent_token(token: str) -> bytes:
    return token_sha256(token)


def new_agent_token() -> str:
    return new_token(AGENT_TOKEN_PREFIX)


def valid_vps_name(name: str) -> str:
    """The name without surrounding blanks; InvalidInputError when empty, too long or with NUL."""
    name = name.strip()
    if not 1 <= len(name) <= VPS_NAME_MAX_CHARS or "\x00" in name:
        raise InvalidInputError(
            f"a VPS name must be 1 to {VPS_NAME_MAX_CHARS} characters, without NUL"
        )
    return name


async def append_next(conn: Connection, state: VpsState, event: NewVpsEvent) -> StoredVpsEvent:
    """Append ``event`` at the version after ``state``'s, apply it to the registry and
    announce it, all in the caller's transaction; ConcurrencyError if that version
    was taken meanwhile."""
    stored = await append_vps_event(
        conn, state.vps_id, state.version + 1, event.event_type, event.payload
    )
    await catch_up(conn)
    await conn.execute("SELECT pg_notify($1, $2)", VPS_EVENTS_CHANNEL, str(stored.event_id))
    return stored


async def run_vps_command(
    conn: Connection, vps_id: int, decide: Decide, *, attempts: int = COMMAND_ATTEMPTS
) -> StoredVpsEvent | None:
    """Load the VPS, decide, append: each attempt in its own transaction (a savepoint
    inside the caller's). A conflict reloads and decides again, up to ``attempts``
    times; then ConcurrencyError says to run the command again. Returns the event
    appended, or None when ``decide`` found nothing to do."""
    if attempts < 1:
        raise ValueError("a command needs at least one attempt")
    for attempt in range(1, attempts + 1):
        try:
            async with conn.transaction():
                state = await load_vps(conn, vps_id)
                event = await decide(state)
                return None if event is None else await append_next(conn, state, event)
        except ConcurrencyError as error:
            if attempt == attempts:
                raise ConcurrencyError(
                    f"VPS {vps_id} was changed by another command while this one ran"
                    f" ({attempts} attempt{'s' if attempts > 1 else ''}); run it again"
                ) from error
            logger.info("VPS %d changed concurrently; deciding again (%s)", vps_id, error)
    raise AssertionError("unreachable")


async def _lock_owner(conn: Connection, owner_id: int) -> None:
    # FOR KEY SHARE: the owner cannot be deleted before this transaction ends.
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE)", owner_id
    ):
        raise InvalidInputError(f"no user with id {owner_id}")


def _require_live(state: VpsState) -> None:
    if not state.live:
        raise UnknownVpsError(f"no VPS with id {state.vps_id}")


async def register_vps(conn: Connection, name: str, owner_id: int | None = None) -> IssuedToken:
    """Register a VPS owned by user ``owner_id`` (None: no owner, only admins see it)."""
    name = valid_vps_name(name)
    token = new_agent_token()
    async with conn.transaction():
        if owner_id is not None:
            await _lock_owner(conn, owner_id)
        vps_id: int = await conn.fetchval("SELECT nextval('vps_id_seq')")
        payload = {
            "name": name,
            "token_sha256": hash_agent_token(token).hex(),
            "owner_id": owner_id,
        }
        await append_next(conn, VpsState(vps_id), NewVpsEvent(VPS_REGISTERED, payload))
    return IssuedToken(vps_id, token)


def rotation(token: str | None) -> Decide:
    """The decision to make ``token`` the VPS's only active one (None: no token)."""
    digest = None if token is None else hash_agent_token(token).hex()

    async def decide(state: VpsState) -> NewVpsEvent:
        _require_live(state)
        return NewVpsEvent(VPS_TOKEN_ROTATED, {"token_sha256": digest})

    return decide


async def rotate_agent_token(
    conn: Connection, vps_id: int, *, attempts: int = COMMAND_ATTEMPTS
) -> IssuedToken:
    """Issue a new token; the previous one stops authenticating at once."""
    token = new_agent_token()
    await run_vps_command(conn, vps_id, rotation(token), attempts=attempts)
    return IssuedToken(vps_id, token)


async def revoke_agent_token(conn: Connection, vps_id: int) -> None:
    """Leave the VPS without an active token: its agent is refused (and its open stream
    closed) until `rotate_agent_token` issues a new one.

    A `token_rotated` event to no token, so that every command side, which closes
    the streams of a VPS whose token rotated, reacts at once.
    """
    await run_vps_command(conn, vps_id, rotation(None))


async def rename_vps(conn: Connection, vps_id: int, name: str) -> str:
    """Give a VPS a new name (a `renamed` event); returns the name as stored."""
    name = valid_vps_name(name)

    async def decide(state: VpsState) -> NewVpsEvent:
        _require_live(state)
        return NewVpsEvent(VPS_RENAMED, {"name": name})

    await run_vps_command(conn, vps_id, decide)
    return name


async def change_vps_owner(conn: Connection, vps_id: int, owner_id: int | None) -> bool:
    """Give a VPS to user ``owner_id`` (None: no owner, only admins see it); False when
    it already was theirs."""

    async def decide(state: VpsState) -> NewVpsEvent | None:
        _require_live(state)
        if owner_id is not None:
            await _lock_owner(conn, owner_id)
        if state.owner_id == owner_id:
            return None
        return NewVpsEvent(VPS_OWNER_CHANGED, {"owner_id": owner_id})

    return await run_vps_command(conn, vps_id, decide) is not None


async def disown_vpses(conn: Connection, owner_id: int) -> list[int]:
    """Leave every VPS of user ``owner_id`` without owner, by events, so that the user
    can be removed (the foreign key refuses to remove an owner); returns their ids.

    The user's row stays locked until the caller's transaction ends, so no VPS is
    registered for them meanwhile.
    """
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", owner_id)
        owned = [
            row["id"]
            for row in await conn.fetch(
                "SELECT id FROM vps WHERE owner_id = $1 ORDER BY id", owner_id
            )
        ]

        async def decide(state: VpsState) -> NewVpsEvent | None:
            if not state.live or state.owner_id != owner_id:
                return None
            return NewVpsEvent(VPS_OWNER_CHANGED, {"owner_id": None})

        for vps_id in owned:
            await run_vps_command(conn, vps_id, decide)
    return owned


async def configure_agent(
    conn: Connection,
    vps_id: int,
    *,
    collect_interval_seconds: int | None = None,
    upload_interval_seconds: int | None = None,
    upload_batch_max_size: int | None = None,
    keep_unset: bool = False,
) -> None:
    """Override the server's default AgentConfig for one VPS (None: use the default,
    or with ``keep_unset`` keep the override the VPS has now)."""
    for name, value, lower, upper in (
        ("collect interval", collect_interval_seconds, *COLLECT_BOUNDS),
        ("upload interval", upload_interval_seconds, *UPLOAD_BOUNDS),
        ("batch size", upload_batch_max_size, *BATCH_BOUNDS),
    ):
        if value is not None and not lower <= value <= upper:
            raise InvalidInputError(f"the {name} must be between {lower} and {upper}")
    payload = {
        "collect_interval_seconds": collect_interval_seconds,
        "upload_interval_seconds": upload_interval_seconds,
        "upload_batch_max_size": upload_batch_max_size,
    }

    async def decide(state: VpsState) -> NewVpsEvent:
        _require_live(state)
        if not keep_unset:
            return NewVpsEvent(VPS_AGENT_CONFIG_CHANGED, payload)
        current = dict(state.agent_overrides)
        merged = {
            name: current.get(name) if value is None else value for name, value in payload.items()
        }
        return NewVpsEvent(VPS_AGENT_CONFIG_CHANGED, merged)

    await run_vps_command(conn, vps_id, decide)


async def decommission_vps(conn: Connection, vps_id: int) -> None:
    """Remove a VPS; its measurements and rollups go with it."""

    async def decide(state: VpsState) -> NewVpsEvent:
        _require_live(state)
        return NewVpsEvent(VPS_DECOMMISSIONED, {})

    await run_vps_command(conn, vps_id, decide)


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
