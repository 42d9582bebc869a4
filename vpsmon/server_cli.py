"""Implementations of the server-side `vpsmon` subcommands."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pydantic import ValidationError

from command_side.vps_commands import (
    UnknownVpsError,
    configure_agent,
    decommission_vps,
    register_vps,
    rotate_agent_token,
)
from vpsmon.cli import print_json
from vpsmon.settings import Settings
from vpsmon.storage.backend import BackendUnavailableError
from vpsmon.storage.database import open_database
from vpsmon.storage.migrations import MigrationError, MigrationReport
from vpsmon.storage.schema import upgrade_schema


class CommandError(RuntimeError):
    """A failure to report to the operator as one line, without a traceback."""


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"VPSMON_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise CommandError(f"invalid settings: {problems}") from None


async def _migrate(conn: asyncpg.Connection, settings: Settings) -> MigrationReport:
    try:
        return await upgrade_schema(conn, settings)
    except (MigrationError, BackendUnavailableError) as error:
        raise CommandError(str(error)) from error


@asynccontextmanager
async def _connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to an up-to-date schema (commands migrate first, as `up` would)."""
    async with open_database(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await _migrate(conn, settings)
            yield conn
        finally:
            await conn.close()


async def migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    async with open_database(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            report = await _migrate(conn, settings)
        finally:
            await conn.close()
    print(f"backend: {report.backend.value}")
    for migration in report.applied:
        print(f"applied {migration.path.name}")
    total = report.already_applied + len(report.applied)
    print(f"schema up to date: {total} migrations, {len(report.applied)} applied now")
    return 0


async def vps(args: argparse.Namespace) -> int:
    settings = _settings()
    async with _connection(settings) as conn:
        if args.vps_command == "add":
            try:
                issued = await register_vps(conn, args.name)
            except ValueError as error:
                raise CommandError(str(error)) from error
            if args.json:
                print_json(
                    {"vps_id": issued.vps_id, "name": args.name, "agent_token": issued.token}
                )
            else:
                print(f"VPS {issued.vps_id} registered: {args.name}")
                print(f"agent token (shown once): {issued.token}")
        elif args.vps_command == "list":
            rows = await conn.fetch("SELECT id, name, created_at FROM vps ORDER BY id")
            if args.json:
                print_json([dict(row) for row in rows])
            else:
                for row in rows:
                    print(
                        f"{row['id']:>6}  {row['name']}  (since {row['created_at']:%Y-%m-%d %H:%M})"
                    )
        elif args.vps_command == "config":
            try:
                await configure_agent(
                    conn,
                    args.vps_id,
                    collect_interval_seconds=args.collect_interval,
                    upload_interval_seconds=args.upload_interval,
                    upload_batch_max_size=args.batch_max,
                )
            except (UnknownVpsError, ValueError) as error:
                raise CommandError(str(error)) from error
            print(f"agent configuration of VPS {args.vps_id} updated")
        elif args.vps_command == "rotate-token":
            try:
                issued = await rotate_agent_token(conn, args.vps_id)
            except UnknownVpsError as error:
                raise CommandError(str(error)) from error
            print(f"new agent token for VPS {issued.vps_id} (shown once): {issued.token}")
        elif args.vps_command == "remove":
            try:
                await decommission_vps(conn, args.vps_id)
            except UnknownVpsError as error:
                raise CommandError(str(error)) from error
            print(f"VPS {args.vps_id} removed with its data")
    return 0


def command_side(args: argparse.Namespace) -> int:
    from command_side.server import run

    return run(_settings())


async def up(args: argparse.Namespace) -> int:
    """For now: the database and its schema, kept running until Ctrl-C."""
    settings = _settings()
    async with open_database(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            report = await _migrate(conn, settings)
        finally:
            await conn.close()
        print(f"vpsmon database ready ({report.backend.value}): {dsn}", flush=True)
        print("services are not available yet; press Ctrl-C to stop", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    return 0
