"""Accounts and access control: users, API tokens, login sessions, throttling, visibility.

A pure data layer over asyncpg; the HTTP routes and the CLI call it.
Passwords are hashed with scrypt (memory-hard); API and session tokens carry
256 random bits and only their SHA-256 is stored, so a database dump reveals
no credential.
"""

from query_side.accounts.api_tokens import (
    TOKEN_TOUCH_INTERVAL,
    ApiTokenInfo,
    authenticate_token,
    create_api_token,
    list_api_tokens,
    revoke_api_token,
    revoke_api_token_by_digest,
)
from query_side.accounts.passwords import (
    hash_password,
    validate_password,
    verify_password,
)
from query_side.accounts.sessions import (
    DEFAULT_SESSION_TTL,
    INVALID_CREDENTIALS,
    TOO_MANY_FAILURES,
    login,
    logout,
    prune_expired,
    session_user,
)
from query_side.accounts.throttling import LOGIN_WINDOW
from query_side.accounts.users import (
    USERNAME_PATTERN,
    User,
    UserSummary,
    create_user,
    find_user,
    first_admin,
    list_users,
    remove_user,
    resolve_owner,
    set_password,
    validate_username,
)
from query_side.accounts.visibility import can_see_vps, visible_vps_clause, visible_vps_ids
from vpsmon.constants import API_TOKEN_PREFIX, SESSION_TOKEN_PREFIX

__all__ = [
    "API_TOKEN_PREFIX",
    "DEFAULT_SESSION_TTL",
    "INVALID_CREDENTIALS",
    "LOGIN_WINDOW",
    "SESSION_TOKEN_PREFIX",
    "TOKEN_TOUCH_INTERVAL",
    "TOO_MANY_FAILURES",
    "USERNAME_PATTERN",
    "ApiTokenInfo",
    "User",
    "UserSummary",
    "authenticate_token",
    "can_see_vps",
    "create_api_token",
    "create_user",
    "find_user",
    "first_admin",
    "hash_password",
    "list_api_tokens",
    "list_users",
    "login",
    "logout",
    "prune_expired",
    "remove_user",
    "resolve_owner",
    "revoke_api_token",
    "revoke_api_token_by_digest",
    "session_user",
    "set_password",
    "validate_password",
    "validate_username",
    "verify_password",
    "visible_vps_clause",
    "visible_vps_ids",
]
