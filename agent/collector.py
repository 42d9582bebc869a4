"""Samples the host's CPU, memory, disk and network usage into snapshots.

Reading goes through psutil (pointed at ``procfs`` via ``psutil.PROCFS_PATH``
so tests can replay recorded /proc files); which disks and interfaces count
is decided by :mod:`agent._devices` from ``sysfs``. Rates are counter deltas
over the monotonic clock, so wall-clock jumps never distort them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from agent._devices import InterfaceFilter, counted_disks
from proto.vpsmon.v1 import agent_pb2

# psutil.PROCFS_PATH is process-global: serialise the collectors that change it.
_PROCFS_LOCK = threading.Lock()
_UINT64_MAX = 2**64 - 1

Counters = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class _Reading:
    """Raw cumulative counters from one pass over procfs."""

    monotonic_s: float
    cpu_total: float
    cpu_idle: float
    memory_total: int
    memory_available: int
    disks: Counters  # counted disks: (read bytes, written bytes)
    interfaces: Counters  # counted interfaces: (rx bytes, tx bytes)


@contextmanager
def _procfs(path: Path) -> Iterator[None]:
    """Point psutil at ``path`` for the duration of the block."""
    with _PROCFS_LOCK:
        previous = psutil.PROCFS_PATH
        psutil.PROCFS_PATH = str(path)
        try:
            yield
        finally:
            psutil.PROCFS_PATH = previous


def _delta_rate(new: int, old: int, elapsed_s: float) -> int:
    """Bytes/second between two counter values; 0 when the counter went backwards.

    A smaller value means the counter was reset (reboot, wrap, device
    re-created): the true delta is unknown, and guessing would make a spike.
    """
    if new < old or elapsed_s <= 0:
        return 0
    return min(int((new - old) / elapsed_s), _UINT64_MAX)


def _rates(new: Mapping[str, tuple[int, int]], old: Counters, elapsed_s: float) -> Counters:
    """Per-device rates; a device seen for the first time contributes 0."""
    rates: Counters = {}
    for name, (a, b) in new.items():
        prev = old.get(name)
        if prev is None:
            rates[name] = (0, 0)
        else:
            rates[name] = (
                _delta_rate(a, prev[0], elapsed_s),
                _delta_rate(b, prev[1], elapsed_s),
            )
    return rates


class MetricsCollector:
    """Turns cumulative kernel counters into per-interval PerformanceSnapshots.

    Not thread-safe per instance: one sampling loop owns a collector.
    """

    def __init__(
        self,
        *,
        procfs: Path = Path("/proc"),
        sysfs: Path = Path("/sys"),
        include_interfaces: Sequence[str] = (),
        exclude_interfaces: Sequence[str] = (),
    ) -> None:
        self._procfs = Path(procfs)
        self._sysfs = Path(sysfs)
        self._interfaces = InterfaceFilter(
            self._sysfs, include=include_interfaces, exclude=exclude_interfaces
        )
        self._previous: _Reading | None = None

    def sample(
        self, *, wall_time_ms: int | None = None, monotonic_s: float | None = None
    ) -> agent_pb2.PerformanceSnapshot | None:
        """Read the counters; return the snapshot since the previous call.

        The first call only primes the counters and returns None, because a
        rate needs two readings.
        """
        if wall_time_ms is None:
            wall_time_ms = time.time_ns() // 1_000_000
        reading = self._read(time.monotonic() if monotonic_s is None else monotonic_s)
        previous, self._previous = self._previous, reading
        if previous is None:
            return None

        elapsed = reading.monotonic_s - previous.monotonic_s
        disks = _rates(reading.disks, previous.disks, elapsed)
        nics = _rates(reading.interfaces, previous.interfaces, elapsed)
        snapshot = agent_pb2.PerformanceSnapshot(
            timestamp_unix_ms=wall_time_ms,
            cpu_overall_usage_percent=_cpu_percent(reading, previous),
            memory_usage_bytes=max(reading.memory_total - reading.memory_available, 0),
            memory_total_bytes=reading.memory_total,
            disk_total_io_read_bytes_per_sec=min(sum(r for r, _ in disks.values()), _UINT64_MAX),
            disk_total_io_write_bytes_per_sec=min(sum(w for _, w in disks.values()), _UINT64_MAX),
        )
        for name in sorted(nics):
            rx, tx = nics[name]
            snapshot.network_interfaces.add(
                interface_name=name, rx_bytes_per_sec=rx, tx_bytes_per_sec=tx
            )
        return snapshot

    def _read(self, monotonic_s: float) -> _Reading:
        with _procfs(self._procfs):
            cpu = psutil.cpu_times()
            memory = psutil.virtual_memory()
            disk_io = self._read_disks()
            try:
                net_io = psutil.net_io_counters(pernic=True, nowrap=False)
            except OSError:
                net_io = {}  # no /proc/net/dev: report no interfaces, keep the rest
        # Linux already includes guest/guest_nice in user/nice: leave them out.
        total = (
            cpu.user
            + cpu.nice
            + cpu.system
            + cpu.idle
            + cpu.iowait
            + cpu.irq
            + cpu.softirq
            + cpu.steal
        )
        disks = {name: disk_io[name] for name in counted_disks(disk_io.keys(), self._sysfs)}
        interfaces = {
            name: (counters.bytes_recv, counters.bytes_sent)
            for name, counters in net_io.items()
            if self._interfaces.counts(name)
        }
        return _Reading(
            monotonic_s=monotonic_s,
            cpu_total=total,
            cpu_idle=cpu.idle + cpu.iowait,
            # psutil already caps available at free when it exceeds total (LXC).
            memory_total=memory.total,
            memory_available=min(memory.available, memory.total),
            disks=disks,
            interfaces=interfaces,
        )

    def _read_disks(self) -> Counters:
        """Cumulative (read, written) bytes per /proc/diskstats device.

        ``perdisk=True`` makes psutil report every line without consulting
        /sys (its partition test hard-codes /sys/block), and it converts
        sectors with the fixed 512 bytes the kernel uses in diskstats.
        ``nowrap=False`` keeps raw counters: resets are handled here.
        """
        if not (self._procfs / "diskstats").exists() and self._sysfs != Path("/sys"):
            return {}  # psutil's fallback would read the real /sys/block
        try:
            per_disk = psutil.disk_io_counters(perdisk=True, nowrap=False)
        except (OSError, NotImplementedError, ValueError):
            return {}  # no diskstats nor /sys/block (containers), or lines psutil rejects
        return {name: (io.read_bytes, io.write_bytes) for name, io in per_disk.items()}


def _cpu_percent(new: _Reading, old: _Reading) -> float:
    """Busy share of all CPU time between two readings, clamped to 0-100.

    busy = total - idle - iowait. Steal counts as busy, as in psutil/top: the
    guest wanted the CPU. Some kernels let idle/iowait step backwards, hence
    the clamp.
    """
    total = new.cpu_total - old.cpu_total
    if total <= 0:
        return 0.0
    busy = total - (new.cpu_idle - old.cpu_idle)
    return min(max(busy / total * 100.0, 0.0), 100.0)
