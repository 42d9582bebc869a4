"""`vpsmon up`: everything for a local trial, as child processes of one command.

The database (embedded unless VPSMON_DATABASE_URL is set) belongs to this
process; the command side, the query side with the UI and an agent for this
host run as children. On the first run it creates an admin and registers this
host; the admin's password and the agent's settings are kept in the data
directory so later runs reuse them. With the embedded database the servers
connect as login roles in vpsmon_ingest and vpsmon_query, with random
passwords kept (mode 0600) beside the admin's. Ctrl-C or SIGTERM stops the agent first
(so its last batch is acked), then the servers, then the database.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from command_side.vps_commands import register_vps
from query_side.accounts import create_user, find_user
from vpsmon.constants import INGEST_ROLE, QUERY_ROLE
from vpsmon.errors import CommandError
from vpsmon.settings import Settings
from vpsmon.storage.database import open_database
from vpsmon.storage.dsn import with_login
from vpsmon.storage.embedded import default_data_dir
from vpsmon.storage.roles import set_login_role
from vpsmon.storage.schema import upgrade_schema

ADMIN = "admin"
# Each server's login role in the embedded cluster and the group it joins.
SERVER_ROLES = {
    "command-side": ("vpsmon_command_side", INGEST_ROLE),
    "query-side": ("vpsmon_query_side", QUERY_ROLE),
}


@dataclass(frozen=True)
class TrialFiles:
    directory: Path

    @property
    def password(self) -> Path:
        return self.directory / "admin-password"

    @property
    def agent_config(self) -> Path:
        return self.directory / "agent.toml"

    def role_password(self, role: str) -> Path:
        return self.directory / f"{role}-password"


def trial_files() -> TrialFiles:
    directory = default_data_dir().parent
    directory.mkdir(parents=True, exist_ok=True)
    return TrialFiles(directory)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


async def _first_run(conn: asyncpg.Connection, files: TrialFiles, settings: Settings) -> None:
    admin = await find_user(conn, ADMIN)
    if admin is None:
        password = secrets.token_urlsafe(12)
        admin = await create_user(conn, ADMIN, password, admin=True)
        _write_private(files.password, password + "\n")
    if not files.agent_config.exists():
        issued = await register_vps(conn, socket.gethostname() or "this-host", owner_id=admin.id)
        _write_private(
            files.agent_config,
            f'server = "{settings.grpc_listen}"\n'
            f'token = "{issued.token}"\n'
            f'spool_dir = "{files.directory / "agent-spool"}"\n',
        )


async def _server_logins(conn: asyncpg.Connection, files: TrialFiles, dsn: str) -> dict[str, str]:
    """A DSN per server: its own login role, in its group, with a password only we know.

    The embedded cluster is ours alone, so the roles are (re)set at every start.
    """
    dsns = {}
    for server, (role, group) in SERVER_ROLES.items():
        path = files.role_password(role)
        password = path.read_text().strip() if path.exists() else ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{20,}", password):
            password = secrets.token_urlsafe(24)
            _write_private(path, password + "\n")
        await set_login_role(conn, role, password, group)
        dsns[server] = with_login(dsn, role, password)
    return dsns


async def _spawn(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    # A session of its own: Ctrl-C reaches only `up`, which stops the children
    # in order, and a child that signals its own process group (Sanic does
    # when it force-stops workers) cannot hit `up`.
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vpsmon.cli",
        *args,
        env={**os.environ, **env},
        start_new_session=True,
    )


async def _wait_until_listening(
    address: str, children: list[asyncio.subprocess.Process], timeout: float = 120.0
) -> None:
    host, _, port = address.rpartition(":")
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError:
            if any(child.returncode is not None for child in children):
                raise CommandError(
                    "a vpsmon service exited during start-up; see its log above"
                ) from None
            if asyncio.get_running_loop().time() > deadline:
                raise CommandError(f"nothing listens on {address} after {timeout:.0f} s") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


async def run_trial(settings: Settings) -> int:
    files = trial_files()
    async with open_database(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            report = await upgrade_schema(conn, settings)
            await _first_run(conn, files, settings)
            if settings.database_url:
                logins = dict.fromkeys(SERVER_ROLES, dsn)  # the operator's roles, as configured
            else:
                logins = await _server_logins(conn, files, dsn)
        finally:
            await conn.close()

        def env(server: str) -> dict[str, str]:
            return {"VPSMON_DATABASE_URL": logins[server], "VPSMON_BACKEND": report.backend.value}

        servers = [
            await _spawn(["command-side"], env("command-side")),
            await _spawn(["query-side", "--workers", "1"], env("query-side")),
        ]
        for address in (settings.grpc_listen, settings.http_listen):
            await _wait_until_listening(address, servers)
        agent = await _spawn(["agent", "--config", str(files.agent_config)], {})
        password = files.password.read_text().strip() if files.password.exists() else "(set by you)"
        print(
            f"\nvpsmon is running ({report.backend.value}).\n"
            f"  dashboard:  http://{settings.http_listen}/\n"
            f"  log in as:  {ADMIN} / {password}   (kept in {files.password})\n"
            f"  agents:     {settings.grpc_listen}   (this host reports already)\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        children = [agent, *servers]
        exited = [asyncio.create_task(child.wait()) for child in children]
        await asyncio.wait(
            [asyncio.create_task(stop.wait()), *exited], return_when=asyncio.FIRST_COMPLETED
        )
        for group in ([agent], servers):
            for child in group:
                if child.returncode is None:
                    child.send_signal(signal.SIGTERM)
            for child in group:
                try:
                    await asyncio.wait_for(child.wait(), 30)
                except TimeoutError:
                    child.kill()
                    await child.wait()
        failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
        return 1 if failed and not stop.is_set() else 0
