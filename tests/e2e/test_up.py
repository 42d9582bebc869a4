"""`vpsmon up`: one command brings up the database, both servers and an agent for this
host; a new user logs in and sees this machine's live metrics; Ctrl-C leaves nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import psutil

from tests.support.processes import ROOT, free_port


def processes_using(marker: str) -> list[psutil.Process]:
    """Live processes whose command line or environment names ``marker``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status", "environ"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            text = " ".join(process.info["cmdline"] or [])
            text += " ".join((process.info["environ"] or {}).values())
            if marker in text:
                found.append(process)
        except psutil.Error:
            continue
    return found


async def test_up_runs_everything_and_ctrl_c_stops_everything() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="vpsmon-up-", dir="/tmp"))
    http, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "VPSMON_DATA_DIR": str(data_dir),
        "VPSMON_HTTP_LISTEN": f"127.0.0.1:{http}",
        "VPSMON_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
    }
    env.pop("VPSMON_DATABASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vpsmon.cli",
        "up",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # like a terminal's foreground process group
    )
    try:
        assert process.stdout is not None
        banner = ""
        while "Press Ctrl-C" not in banner:
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            assert line, f"vpsmon up exited early:\n{banner}"
            banner += line.decode()
        assert f"http://127.0.0.1:{http}/" in banner
        password = (data_dir / "admin-password").read_text().strip()
        assert f"admin / {password}" in banner
        started = time.monotonic()

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}", timeout=5) as client:
            login = await client.post(
                "/api/auth/login", json={"username": "admin", "password": password}
            )
            assert login.status_code == 200
            while True:
                listing = (await client.get("/api/vps")).json()
                if listing and listing[0]["latest"] is not None:
                    break
                assert time.monotonic() - started < 30, "this host's metrics never arrived"
                await asyncio.sleep(0.1)
        assert listing[0]["online"] is True
        await _assert_servers_use_their_roles(data_dir)
        assert 0 <= listing[0]["latest"]["cpu_usage_percent"] <= 100
        assert listing[0]["latest"]["memory_total_bytes"] == psutil.virtual_memory().total
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
            await asyncio.wait_for(process.wait(), 60)
    assert process.returncode == 0
    deadline = time.monotonic() + 10
    while processes_using(str(data_dir)) or _group_alive(process.pid):
        assert time.monotonic() < deadline, [p.info for p in processes_using(str(data_dir))]
        await asyncio.sleep(0.05)


async def _assert_servers_use_their_roles(data_dir: Path) -> None:
    """Each server is connected as its own login role; the passwords are private files."""
    for role in ("vpsmon_command_side", "vpsmon_query_side"):
        mode = (data_dir / f"{role}-password").stat().st_mode
        assert stat.S_IMODE(mode) == 0o600, oct(mode)
    conn = await asyncpg.connect(f"postgresql://postgres@/vpsmon?host={data_dir / 'pg18'}")
    try:
        users = await conn.fetch(
            "SELECT r.rolname, g.rolname AS grp FROM pg_stat_activity a"
            " JOIN pg_roles r ON r.rolname = a.usename"
            " JOIN pg_auth_members m ON m.member = r.oid JOIN pg_roles g ON g.oid = m.roleid"
            " WHERE a.datname = 'vpsmon'"
        )
    finally:
        await conn.close()
    assert {(u["rolname"], u["grp"]) for u in users} >= {
        ("vpsmon_command_side", "vpsmon_ingest"),
        ("vpsmon_query_side", "vpsmon_query"),
    }


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies (PID 1 may not reap here) are gone for every practical purpose.
    return any(
        p.status() != psutil.STATUS_ZOMBIE for p in psutil.process_iter() if _pgid(p) == pgid
    )


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, psutil.Error):
        return None
