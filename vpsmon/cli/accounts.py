"""`vpsmon user ...` and `vpsmon token ...`: the lifecycle of accounts and credentials.

Tokens are stored only as SHA-256 hashes, so a token is named by the first hex
digits of its hash (`token list` shows them; `token revoke` takes them, or the
clear-text token itself).
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from command_side.vps_commands import (
    disown_vpses,
    list_agent_tokens,
    revoke_agent_token,
)
from query_side.accounts import (
    create_api_token,
    create_user,
    find_user,
    list_api_tokens,
    list_users,
    remove_user,
    revoke_api_token_by_digest,
    set_password,
)
from vpsmon.cli.connections import load_settings, migrated_connection
from vpsmon.cli.output import print_json
from vpsmon.constants import AGENT_TOKEN_PREFIX, API_TOKEN_PREFIX
from vpsmon.errors import CommandError, UnknownUserError
from vpsmon.tokens import token_sha256

TOKEN_ID_DIGITS = 12  # shown by `token list`
TOKEN_ID_MIN_DIGITS = 8  # accepted by `token revoke`
_HEX = re.compile(r"[0-9a-f]+")


def _password_from_stdin() -> tuple[str, bool]:
    """The first line of stdin when it is not a terminal, else a generated password.

    Returns the password and whether it was generated (then it must be shown).
    An empty first line (or /dev/null) also gets a generated one.
    """
    stdin = sys.stdin
    if stdin is not None and not stdin.isatty():
        password = stdin.readline().rstrip("\r\n")
        if password:
            return password, False
    return secrets.token_urlsafe(12), True


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


async def user(args: argparse.Namespace) -> int:
    handlers = {"add": _user_add, "passwd": _user_passwd, "remove": _user_remove}
    async with migrated_connection(load_settings()) as conn:
        if args.user_command == "list":
            return await _user_list(conn, args)
        return await handlers[args.user_command](conn, args)


async def _user_add(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    password, generated = _password_from_stdin()
    created = await create_user(conn, args.name, password, admin=args.admin)
    if args.json:
        print_json(
            {
                "id": created.id,
                "username": created.username,
                "is_admin": created.is_admin,
                "password": password if generated else None,
            }
        )
        return 0
    role = " (admin)" if created.is_admin else ""
    print(f"user {created.id} created: {created.username}{role}")
    if generated:
        print(f"password (shown once): {password}")
    return 0


async def _user_passwd(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    password, generated = _password_from_stdin()
    ended = await set_password(conn, args.name, password)
    if args.json:
        print_json(
            {
                "username": args.name,
                "sessions_ended": ended,
                "password": password if generated else None,
            }
        )
        return 0
    print(f"password of {args.name} changed; {ended} session(s) ended")
    if generated:
        print(f"password (shown once): {password}")
    return 0


async def _user_remove(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    async with conn.transaction():
        user = await find_user(conn, args.name)
        if user is None:
            raise UnknownUserError(f"no user named {args.name}")
        # Their VPSes stay, without owner: an event each, before the user goes.
        owned = len(await disown_vpses(conn, user.id))
        removed = await remove_user(conn, args.name)
    if args.json:
        print_json({"id": removed.id, "username": removed.username, "vps_left_to_admins": owned})
        return 0
    print(f"user {removed.username} removed, with their sessions and API tokens")
    if owned:
        print(f"{owned} VPS(es) they owned are now visible to admins only")
    return 0


async def _user_list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    users = await list_users(conn)
    if args.json:
        print_json([vars(u) for u in users])
        return 0
    for u in users:
        role = "admin" if u.is_admin else "user"
        print(
            f"{u.id:>6}  {u.username}  {role}  vps: {u.vps}  sessions: {u.active_sessions}"
            f"  api tokens: {u.active_api_tokens}  (since {_when(u.created_at)})"
        )
    return 0


@dataclass(frozen=True)
class TokenRow:
    kind: Literal["api", "agent"]
    sha256_hex: str
    user: str | None
    vps_id: int | None
    vps_name: str | None
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def id(self) -> str:
        return self.sha256_hex[:TOKEN_ID_DIGITS]

    @property
    def holder(self) -> str:
        if self.kind == "api":
            return self.user or "-"
        return f"VPS {self.vps_id} ({self.vps_name})"

    def as_json(self) -> dict[str, Any]:
        fields = {k: v for k, v in vars(self).items() if k != "sha256_hex"}
        return {"id": self.id, **fields, "active": self.revoked_at is None}


async def _all_tokens(conn: asyncpg.Connection) -> list[TokenRow]:
    rows = [
        TokenRow(
            "api",
            t.sha256_hex,
            t.username,
            None,
            None,
            t.name,
            t.created_at,
            t.last_used_at,
            t.revoked_at,
        )
        for t in await list_api_tokens(conn)
    ]
    rows += [
        TokenRow(
            "agent", t.sha256_hex, None, t.vps_id, t.vps_name, "", t.created_at, None, t.revoked_at
        )
        for t in await list_agent_tokens(conn)
    ]
    return rows


async def token(args: argparse.Namespace) -> int:
    async with migrated_connection(load_settings()) as conn:
        if args.token_command == "create":
            return await _token_create(conn, args)
        if args.token_command == "list":
            return await _token_list(conn, args)
        return await _token_revoke(conn, args)


async def _token_create(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    issued = await create_api_token(conn, args.username, args.name)
    if args.json:
        print_json(
            {
                "kind": "api",
                "id": token_sha256(issued).hex()[:TOKEN_ID_DIGITS],
                "user": args.username,
                "token": issued,
            }
        )
    else:
        print(f"API token for {args.username} (shown once): {issued}")
    return 0


async def _token_list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    rows = [t for t in await _all_tokens(conn) if args.all or t.revoked_at is None]
    if args.json:
        print_json([t.as_json() for t in rows])
        return 0
    for t in rows:
        status = "active" if t.revoked_at is None else f"revoked {_when(t.revoked_at)}"
        print(
            f"{t.kind:<5}  {t.id}  {t.holder}  {t.name or '-'}  created {_when(t.created_at)}"
            f"  last used {_when(t.last_used_at)}  {status}"
        )
    return 0


def _wanted_hash_prefix(reference: str) -> str:
    """The hex digest (or prefix of one) that ``reference`` names."""
    if reference.startswith((API_TOKEN_PREFIX, AGENT_TOKEN_PREFIX)):
        return token_sha256(reference).hex()
    prefix = reference.strip().lower()
    if not _HEX.fullmatch(prefix) or not TOKEN_ID_MIN_DIGITS <= len(prefix) <= 64:
        raise CommandError(
            f"give a token id (at least {TOKEN_ID_MIN_DIGITS} hex digits, as `vpsmon token list`"
            " shows) or the token itself"
        )
    return prefix


async def _token_revoke(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    prefix = _wanted_hash_prefix(args.token)
    shown = prefix[:TOKEN_ID_DIGITS]
    matches = [t for t in await _all_tokens(conn) if t.sha256_hex.startswith(prefix)]
    active = [t for t in matches if t.revoked_at is None]
    if not matches:
        raise CommandError(f"no token with id {shown}")
    if not active:
        raise CommandError(f"token {shown} is already revoked")
    if len(active) > 1:
        raise CommandError(f"id {shown} matches {len(active)} tokens; give more digits")
    (found,) = active
    if found.kind == "api":
        await revoke_api_token_by_digest(conn, bytes.fromhex(found.sha256_hex))
        message = f"API token {found.id} of {found.user} revoked"
    else:
        assert found.vps_id is not None
        await revoke_agent_token(conn, found.vps_id)
        message = (
            f"agent token {found.id} of {found.holder} revoked; its agent is refused until"
            f" `vpsmon vps rotate-token {found.vps_id}` issues a new one"
        )
    if args.json:
        print_json({**found.as_json(), "active": False, "revoked": True})
    else:
        print(message)
    return 0
