"""Implementations of the server-side `vpsmon` subcommands."""

from __future__ import annotations

import argparse
import sys

from command_side.vps_commands import (
    change_vps_owner,
    configure_agent,
    decommission_vps,
    register_vps,
    rename_vps,
    rotate_agent_token,
)
from query_side.accounts import resolve_owner
from query_side.registry import list_registered_vps
from vpsmon.cli.connections import load_settings, migrated_connection
from vpsmon.cli.output import print_json
from vpsmon.errors import CommandError
from vpsmon.storage.backend import recorded_backend
from vpsmon.storage.database import open_database
from vpsmon.storage.schema import upgrade_database


async def migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with open_database(settings) as dsn:
        report = await upgrade_database(dsn, settings)
    print(f"backend: {report.backend.value} ({report.decision.reason})")
    for migration in report.applied:
        print(f"applied {migration.path.name}")
    total = report.already_applied + len(report.applied)
    print(f"schema up to date: {total} migrations, {len(report.applied)} applied now")
    return 0


async def vps(args: argparse.Namespace) -> int:
    settings = load_settings()
    async with migrated_connection(settings) as conn:
        if args.vps_command == "add":
            owner = await resolve_owner(conn, args.owner)
            issued = await register_vps(
                conn, args.name, owner_id=None if owner is None else owner.id
            )
            owner_name = None if owner is None else owner.username
            if args.json:
                print_json(
                    {
                        "vps_id": issued.vps_id,
                        "name": args.name,
                        "owner": owner_name,
                        "agent_token": issued.token,
                    }
                )
            else:
                print(f"VPS {issued.vps_id} registered: {args.name} (owner: {owner_name or '-'})")
                print(f"agent token (shown once): {issued.token}")
            if owner is None:
                print(
                    "note: there is no admin user yet, so this VPS has no owner and only"
                    " admins will see it; create one with `vpsmon user add NAME --admin`",
                    file=sys.stderr,
                )
        elif args.vps_command == "list":
            listed = await list_registered_vps(conn)
            if args.json:
                print_json(
                    [
                        {"id": v.id, "name": v.name, "owner": v.owner, "created_at": v.created_at}
                        for v in listed
                    ]
                )
            else:
                for v in listed:
                    print(
                        f"{v.id:>6}  {v.name}  owner: {v.owner or '-'}"
                        f"  (since {v.created_at:%Y-%m-%d %H:%M})"
                    )
        elif args.vps_command == "config":
            await configure_agent(
                conn,
                args.vps_id,
                collect_interval_seconds=args.collect_interval,
                upload_interval_seconds=args.upload_interval,
                upload_batch_max_size=args.batch_max,
                keep_unset=not args.reset,
            )
            print(f"agent configuration of VPS {args.vps_id} updated")
        elif args.vps_command == "rotate-token":
            issued = await rotate_agent_token(conn, args.vps_id)
            if args.json:
                print_json({"vps_id": issued.vps_id, "agent_token": issued.token})
            else:
                print(f"new agent token for VPS {issued.vps_id} (shown once): {issued.token}")
        elif args.vps_command == "rename":
            name = await rename_vps(conn, args.vps_id, args.name)
            if args.json:
                print_json({"vps_id": args.vps_id, "name": name})
            else:
                print(f"VPS {args.vps_id} renamed to {name}")
        elif args.vps_command == "owner":
            owner = None if args.none else await resolve_owner(conn, args.username)
            await change_vps_owner(conn, args.vps_id, None if owner is None else owner.id)
            owner_name = None if owner is None else owner.username
            if args.json:
                print_json({"vps_id": args.vps_id, "owner": owner_name})
            else:
                print(f"VPS {args.vps_id} owner: {owner_name or '- (admins only)'}")
        elif args.vps_command == "remove":
            await decommission_vps(conn, args.vps_id)
            if args.json:
                print_json({"vps_id": args.vps_id, "removed": True})
            else:
                print(f"VPS {args.vps_id} removed with its data")
    return 0


async def projections(args: argparse.Namespace) -> int:
    from projections.rebuild import rebuild_projections

    settings = load_settings()
    async with migrated_connection(settings) as conn:
        backend = await recorded_backend(conn)
        assert backend is not None
        report = await rebuild_projections(conn, backend)
    print(f"replayed {report.vps_events} VPS events")
    print(f"recomputed the latest values of {report.latest_rows} VPSes")
    print(f"recomputed the rollups from {report.rollups_from:%Y-%m-%d %H:%M} UTC on")
    return 0


def command_side(args: argparse.Namespace) -> int:
    from command_side.server import run

    return run(load_settings())


def maintain(args: argparse.Namespace) -> int:
    from command_side.maintenance_jobs import run

    return run(load_settings())


def query_side(args: argparse.Namespace) -> int:
    from query_side.server import run

    if not 1 <= args.workers <= 64:
        raise CommandError("--workers must be between 1 and 64")
    return run(load_settings(), args.workers)


async def up(args: argparse.Namespace) -> int:
    from vpsmon.cli.trial import run_trial

    return await run_trial(load_settings())
