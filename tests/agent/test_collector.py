"""MetricsCollector on recorded /proc and /sys shapes, built per test in tmp_path.

The file formats follow real Linux 6.x output (/proc/stat, /proc/meminfo,
/proc/diskstats with 17 counters per device, /proc/net/dev) and the sysfs
layout (/sys/block and /sys/class/net are symlinks into /sys/devices).
Counter deltas are distinct powers of two, so any device wrongly included or
left out changes the totals.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from agent.collector import MetricsCollector
from proto.vpsmon.v1 import agent_pb2

MEMINFO_TEMPLATE = """\
MemTotal:       {total:>8} kB
MemFree:        {free:>8} kB
MemAvailable:   {available:>8} kB
Buffers:        {buffers:>8} kB
Cached:         {cached:>8} kB
SwapCached:            0 kB
Active:           364492 kB
Inactive:         521888 kB
Active(anon):      55740 kB
Inactive(anon):    17772 kB
Active(file):     308752 kB
Inactive(file):   504116 kB
Unevictable:       12464 kB
Mlocked:           11412 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Dirty:               368 kB
Writeback:             0 kB
AnonPages:         17340 kB
Mapped:            60208 kB
Shmem:             68812 kB
KReclaimable:     240632 kB
Slab:             274764 kB
SReclaimable:     240632 kB
SUnreclaim:        34132 kB
KernelStack:        1484 kB
PageTables:         2768 kB
CommitLimit:    12342040 kB
Committed_AS:     241588 kB
VmallocTotal:   34359738367 kB
VmallocUsed:       14284 kB
VmallocChunk:          0 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
DirectMap4k:       26624 kB
DirectMap2M:     2070528 kB
"""

NET_DEV_HEADER = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast"
    "|bytes    packets errs drop fifo colls carrier compressed\n"
)

STAT_TAIL = """\
intr 850440 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 15 0 0 0 0 161 97 0
ctxt 1794662
btime 1795657810
processes 20950
procs_running 2
procs_blocked 1
softirq 801001 0 51997 4 36089 420893 0 2 98623 5 193388
"""

PCI = "pci0000:00/0000:00:02.0"
MIB = 1 << 20


def _relative_symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


class FakeHost:
    """A /proc + /sys tree shaped like a real host's, with settable counters."""

    def __init__(self, root: Path) -> None:
        self.proc = root / "proc"
        self.sys = root / "sys"
        (self.proc / "net").mkdir(parents=True)
        (self.sys / "block").mkdir(parents=True)
        (self.sys / "class" / "net").mkdir(parents=True)
        self._disk_dirs: dict[str, Path] = {}
        self._nic_dirs: dict[str, Path] = {}
        self._majors: dict[str, tuple[int, int]] = {}
        self.set_cpu(user=33012, nice=0, system=11175, idle=101121, iowait=2334)
        self.set_memory(total_kb=24684084, free_kb=22781172, available_kb=24197208)
        self.set_disks({})
        self.set_net({})

    def collector(self, **kwargs: list[str]) -> MetricsCollector:
        return MetricsCollector(procfs=self.proc, sysfs=self.sys, **kwargs)

    # -- /proc ------------------------------------------------------------

    def set_cpu(
        self,
        *,
        user: int,
        nice: int = 0,
        system: int,
        idle: int,
        iowait: int = 0,
        irq: int = 0,
        softirq: int = 0,
        steal: int = 0,
        guest: int = 0,
        guest_nice: int = 0,
    ) -> None:
        """Aggregate line in USER_HZ ticks, as /proc/stat prints it."""
        fields = (user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice)
        line = " ".join(str(v) for v in fields)
        half = " ".join(str(v // 2) for v in fields)
        text = f"cpu  {line}\ncpu0 {half}\ncpu1 {half}\n{STAT_TAIL}"
        (self.proc / "stat").write_text(text)

    def set_memory(
        self,
        *,
        total_kb: int,
        free_kb: int,
        available_kb: int,
        buffers_kb: int = 15676,
        cached_kb: int = 866012,
    ) -> None:
        (self.proc / "meminfo").write_text(
            MEMINFO_TEMPLATE.format(
                total=total_kb,
                free=free_kb,
                available=available_kb,
                buffers=buffers_kb,
                cached=cached_kb,
            )
        )

    def set_disks(self, counters: dict[str, tuple[int, int]]) -> None:
        """/proc/diskstats from cumulative (read, written) bytes per device."""
        lines = []
        for index, (name, (read, written)) in enumerate(counters.items()):
            assert read % 512 == 0, "diskstats counts 512-byte sectors"
            assert written % 512 == 0, "diskstats counts 512-byte sectors"
            major, minor = self._majors.get(name, (8, index))
            stats = [7, 0, read // 512, 12, 5, 1, written // 512, 40, 0, 36, 52]
            stats += [0, 0, 0, 0, 17, 3]  # discards (4.18+) and flushes (5.5+)
            lines.append(f"{major:4d} {minor:7d} {name} " + " ".join(map(str, stats)))
        (self.proc / "diskstats").write_text("".join(line + "\n" for line in lines))

    def set_net(self, counters: dict[str, tuple[int, int]]) -> None:
        """/proc/net/dev from cumulative (rx, tx) bytes per interface."""
        rows = [
            f"{name:>6}: {rx:8d} {rx // 1000:7d}    0    0    0     0          0         0 "
            f"{tx:8d} {tx // 1000:7d}    0    0    0     0       0          0\n"
            for name, (rx, tx) in counters.items()
        ]
        (self.proc / "net" / "dev").write_text(NET_DEV_HEADER + "".join(rows))

    # -- /sys -------------------------------------------------------------

    def add_disk(
        self,
        name: str,
        *,
        major: int = 8,
        minor: int = 0,
        virtual: bool = False,
        slaves: tuple[str, ...] = (),
        bus: str = f"{PCI}/virtio1",
    ) -> None:
        """A whole disk: /sys/devices/.../block/<name> plus the /sys/block/<name> link."""
        parent = self.sys / "devices" / ("virtual" if virtual else bus) / "block"
        disk = parent / name
        for sub in ("holders", "slaves", "queue"):
            (disk / sub).mkdir(parents=True)
        (disk / "dev").write_text(f"{major}:{minor}\n")
        (disk / "queue" / "hw_sector_size").write_text("512\n")
        for member in slaves:
            _relative_symlink(disk / "slaves" / member, self._disk_dirs[member])
            _relative_symlink(self._disk_dirs[member] / "holders" / name, disk)
        _relative_symlink(self.sys / "block" / name, disk)
        _relative_symlink(self.sys / "class" / "block" / name, disk)
        self._disk_dirs[name] = disk
        self._majors[name] = (major, minor)

    def add_partition(self, disk: str, name: str, number: int) -> None:
        """Partitions live only under their disk: /sys/block/<disk>/<part>."""
        major, minor = self._majors[disk]
        part = self._disk_dirs[disk] / name
        (part / "holders").mkdir(parents=True)
        (part / "partition").write_text(f"{number}\n")
        (part / "dev").write_text(f"{major}:{minor + number}\n")
        _relative_symlink(self.sys / "class" / "block" / name, part)
        self._disk_dirs[name] = part
        self._majors[name] = (major, minor + number)

    def add_interface(
        self,
        name: str,
        *,
        virtual: bool = False,
        arphrd: int = 1,
        flags: int = 0x1003,
        bridge: bool = False,
        bonding: bool = False,
        lower: tuple[str, ...] = (),
        bus: str = f"{PCI}/virtio2",
    ) -> None:
        parent = self.sys / "devices" / ("virtual" if virtual else bus) / "net"
        nic = parent / name
        (nic / "statistics").mkdir(parents=True)
        (nic / "type").write_text(f"{arphrd}\n")
        (nic / "flags").write_text(f"{flags:#x}\n")
        if bridge:
            (nic / "bridge").mkdir()
            (nic / "brif").mkdir()
        if bonding:
            (nic / "bonding").mkdir()
        for member in lower:
            _relative_symlink(nic / f"lower_{member}", self._nic_dirs[member])
            _relative_symlink(self._nic_dirs[member] / f"upper_{name}", nic)
        _relative_symlink(self.sys / "class" / "net" / name, nic)
        self._nic_dirs[name] = nic


def _snap(collector: MetricsCollector, t: float) -> agent_pb2.PerformanceSnapshot:
    snapshot = collector.sample(wall_time_ms=1_700_000_000_000 + int(t * 1000), monotonic_s=t)
    assert snapshot is not None
    return snapshot


def _nics(snapshot: agent_pb2.PerformanceSnapshot) -> dict[str, tuple[int, int]]:
    return {
        n.interface_name: (n.rx_bytes_per_sec, n.tx_bytes_per_sec)
        for n in snapshot.network_interfaces
    }


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


# -- priming and time -------------------------------------------------------


def test_first_sample_primes_and_returns_none(host: FakeHost) -> None:
    collector = host.collector()
    assert collector.sample(wall_time_ms=1, monotonic_s=10.0) is None
    snapshot = collector.sample(wall_time_ms=1_700_000_001_234, monotonic_s=11.0)
    assert snapshot is not None
    assert snapshot.timestamp_unix_ms == 1_700_000_001_234


def test_default_timestamp_is_utc_wall_clock_ms(host: FakeHost) -> None:
    collector = host.collector()
    collector.sample()
    before = time.time_ns() // 1_000_000
    snapshot = collector.sample()
    after = time.time_ns() // 1_000_000
    assert snapshot is not None
    assert before <= snapshot.timestamp_unix_ms <= after


def test_procfs_path_is_restored_after_sampling(host: FakeHost) -> None:
    before = psutil.PROCFS_PATH
    host.collector().sample(monotonic_s=1.0)
    assert before == psutil.PROCFS_PATH


# -- CPU and memory ---------------------------------------------------------


def test_cpu_percent_matches_hand_computed_value(host: FakeHost) -> None:
    collector = host.collector()
    host.set_cpu(
        user=1000,
        nice=50,
        system=300,
        idle=8000,
        iowait=200,
        irq=10,
        softirq=40,
        steal=30,
        guest=100,
    )
    collector.sample(monotonic_s=0.0)
    # Deltas: user +400 (of which guest +100), system +100, idle +1300, iowait +100,
    # irq +10, softirq +40, steal +50. Total (guest not added again) = 2000 ticks;
    # busy = 2000 - 1300 idle - 100 iowait = 600 -> 30 %. Double-counting guest
    # would give 700/2100 = 33.3 %; counting iowait as busy would give 35 %.
    host.set_cpu(
        user=1400,
        nice=50,
        system=400,
        idle=9300,
        iowait=300,
        irq=20,
        softirq=80,
        steal=80,
        guest=200,
    )
    assert _snap(collector, 1.0).cpu_overall_usage_percent == pytest.approx(30.0)


def test_cpu_percent_is_clamped_and_zero_without_ticks(host: FakeHost) -> None:
    collector = host.collector()
    host.set_cpu(user=1000, system=100, idle=5000, iowait=500)
    collector.sample(monotonic_s=0.0)
    assert _snap(collector, 1.0).cpu_overall_usage_percent == 0.0  # no ticks elapsed
    # iowait stepping backwards (a known kernel quirk) must not push busy past 100 %.
    host.set_cpu(user=1100, system=100, idle=5000, iowait=450)
    assert _snap(collector, 2.0).cpu_overall_usage_percent == 100.0


def test_memory_used_is_total_minus_available(host: FakeHost) -> None:
    host.set_memory(
        total_kb=2_000_000,
        free_kb=300_000,
        available_kb=1_200_000,
        buffers_kb=100_000,
        cached_kb=700_000,
    )
    collector = host.collector()
    collector.sample(monotonic_s=0.0)
    snapshot = _snap(collector, 1.0)
    assert snapshot.memory_total_bytes == 2_000_000 * 1024
    # Not total - free (1.7 GB) and not total - free - buffers - cache (0.9 GB).
    assert snapshot.memory_usage_bytes == 800_000 * 1024


# -- disks ------------------------------------------------------------------


def _disk_host(host: FakeHost) -> dict[str, int]:
    """A host with every kind of block device; returns each one's per-interval delta."""
    host.add_disk("sda", major=8, minor=0, bus=f"{PCI}/ata1/host0/target0:0:0/0:0:0:0")
    host.add_partition("sda", "sda1", 1)
    host.add_partition("sda", "sda2", 2)
    host.add_disk("sdb", major=8, minor=16, bus=f"{PCI}/ata2/host1/target1:0:0/1:0:0:0")
    host.add_disk("sdc", major=8, minor=32, bus=f"{PCI}/ata3/host2/target2:0:0/2:0:0:0")
    host.add_disk("vda", major=254, minor=0)
    host.add_partition("vda", "vda1", 1)
    host.add_disk("nvme0n1", major=259, minor=0, bus=f"{PCI}/nvme/nvme0")
    host.add_partition("nvme0n1", "nvme0n1p1", 1)
    host.add_disk("sr0", major=11, minor=0, bus=f"{PCI}/ata4/host3/target3:0:0/3:0:0:0")
    for i, name in enumerate(("loop0", "ram0", "zram0")):
        host.add_disk(name, major=7 + i, virtual=True)
    host.add_disk("dm-0", major=252, minor=0, virtual=True, slaves=("sda2",))
    host.add_disk("md0", major=9, minor=0, virtual=True, slaves=("sdb", "sdc"))
    names = [
        "sda",
        "sda1",
        "sda2",
        "sdb",
        "sdc",
        "vda",
        "vda1",
        "nvme0n1",
        "nvme0n1p1",
        "sr0",
        "loop0",
        "ram0",
        "zram0",
        "dm-0",
        "md0",
    ]
    return {name: 512 << i for i, name in enumerate(names)}


def test_disk_totals_count_whole_physical_disks_only(host: FakeHost) -> None:
    deltas = _disk_host(host)
    collector = host.collector()
    host.set_disks({name: (10 * MIB, 20 * MIB) for name in deltas})
    collector.sample(monotonic_s=100.0)
    host.set_disks({name: (10 * MIB + d, 20 * MIB + 2 * d) for name, d in deltas.items()})
    snapshot = _snap(collector, 101.0)
    # Partitions, loop/ram/zram, the optical drive and dm-0/md0 (whose I/O is
    # already on sda/sdb/sdc) are all left out.
    expected = sum(deltas[n] for n in ("sda", "sdb", "sdc", "vda", "nvme0n1"))
    assert snapshot.disk_total_io_read_bytes_per_sec == expected
    assert snapshot.disk_total_io_write_bytes_per_sec == 2 * expected


def test_stacked_and_virtual_disks_are_excluded_whatever_their_name(host: FakeHost) -> None:
    host.add_disk("vdb", major=254, minor=16)
    host.add_disk("bcache0", major=250, bus="platform/bcache")
    host.add_disk("vdc", major=254, minor=32)
    host.add_disk("stacked0", major=251, bus="platform/stack", slaves=("vdc",))
    host.add_disk("mystery0", major=240, virtual=True)
    collector = host.collector()
    names = ("vdb", "bcache0", "vdc", "stacked0", "mystery0")
    host.set_disks({name: (0, 0) for name in names})
    collector.sample(monotonic_s=0.0)
    host.set_disks({name: (512 << i, 0) for i, name in enumerate(names)})
    # vdb (512) + bcache0 (1024, no slaves, not virtual) + vdc (2048).
    assert _snap(collector, 1.0).disk_total_io_read_bytes_per_sec == 512 + 1024 + 2048


def test_without_sys_block_partitions_are_recognised_by_name(host: FakeHost) -> None:
    (host.sys / "block").rmdir()
    collector = host.collector()
    names = ("vda", "vda1", "nvme0n1", "nvme0n1p2", "mmcblk0", "mmcblk0p1", "loop3")
    host.set_disks({name: (0, 0) for name in names})
    collector.sample(monotonic_s=0.0)
    host.set_disks({name: (512 << i, 0) for i, name in enumerate(names)})
    assert _snap(collector, 1.0).disk_total_io_read_bytes_per_sec == 512 + 2048 + 8192


def test_rates_are_bytes_per_second_over_the_monotonic_interval(host: FakeHost) -> None:
    host.add_disk("vda", major=254)
    host.add_interface("eth0")
    collector = host.collector()
    host.set_disks({"vda": (0, 0)})
    host.set_net({"eth0": (1000, 1000)})
    collector.sample(wall_time_ms=5_000, monotonic_s=50.0)
    host.set_disks({"vda": (4 * MIB, 1 * MIB)})
    host.set_net({"eth0": (1000 + 3001, 1000 + 41)})
    # The wall clock jumped back an hour; only the 4 s monotonic interval matters.
    snapshot = collector.sample(wall_time_ms=5_000 - 3_600_000, monotonic_s=54.0)
    assert snapshot is not None
    assert snapshot.disk_total_io_read_bytes_per_sec == MIB
    assert snapshot.disk_total_io_write_bytes_per_sec == MIB // 4
    assert _nics(snapshot) == {"eth0": (750, 10)}  # floor(3001/4), floor(41/4)


# -- network ----------------------------------------------------------------


def _net_host(host: FakeHost) -> dict[str, int]:
    host.add_interface("lo", virtual=True, arphrd=772, flags=0x9)
    host.add_interface("eth0", bus=f"{PCI}/virtio2")
    host.add_interface("ens3", bus="pci0000:00/0000:00:03.0")
    host.add_interface("venet0", virtual=True, arphrd=65534, flags=0x10D1)  # OpenVZ uplink
    host.add_interface("docker0", virtual=True, bridge=True)
    host.add_interface("veth1a2b3c4", virtual=True)
    host.add_interface("br-5f3e8d2a1b9c", virtual=True, bridge=True)
    host.add_interface("br0", virtual=True, bridge=True)  # bridge caught by sysfs, not name
    host.add_interface("eth1", bus="pci0000:00/0000:00:05.0")
    host.add_interface("uplink.100", virtual=True, lower=("eth1",))  # VLAN on eth1
    host.add_interface("wg0", virtual=True, arphrd=65534, flags=0x91)
    host.add_interface("ifb0", virtual=True)
    host.add_interface("loopy", virtual=True, arphrd=772, flags=0x9)  # loopback by type
    names = [
        "lo",
        "eth0",
        "ens3",
        "venet0",
        "docker0",
        "veth1a2b3c4",
        "br-5f3e8d2a1b9c",
        "br0",
        "eth1",
        "uplink.100",
        "wg0",
        "ifb0",
        "loopy",
    ]
    return {name: 1 << i for i, name in enumerate(names)}


def _net_rates(
    host: FakeHost, deltas: dict[str, int], **kwargs: list[str]
) -> dict[str, tuple[int, int]]:
    collector = host.collector(**kwargs)
    host.set_net({name: (5_000_000, 7_000_000) for name in deltas})
    collector.sample(monotonic_s=0.0)
    host.set_net({name: (5_000_000 + 2 * d, 7_000_000 + 4 * d) for name, d in deltas.items()})
    return _nics(_snap(collector, 2.0))


def test_network_counts_uplinks_and_excludes_loopback_and_virtual_plumbing(host: FakeHost) -> None:
    deltas = _net_host(host)
    rates = _net_rates(host, deltas)
    assert rates == {
        name: (deltas[name], 2 * deltas[name]) for name in ("eth0", "ens3", "venet0", "eth1")
    }


def test_exclude_globs_add_to_the_defaults(host: FakeHost) -> None:
    deltas = _net_host(host)
    rates = _net_rates(host, deltas, exclude_interfaces=["ens*", "venet?"])
    assert sorted(rates) == ["eth0", "eth1"]


def test_include_globs_are_an_explicit_allowlist(host: FakeHost) -> None:
    deltas = _net_host(host)
    assert sorted(_net_rates(host, deltas, include_interfaces=["eth*"])) == ["eth0", "eth1"]
    # An operator may count an interface the defaults leave out (a WireGuard uplink);
    # exclude still wins over include.
    rates = _net_rates(host, deltas, include_interfaces=["wg*", "e*"], exclude_interfaces=["eth1"])
    assert sorted(rates) == ["ens3", "eth0", "wg0"]


# -- counter resets and new devices -------------------------------------------


def test_counter_going_backwards_gives_zero_then_normal_rates(host: FakeHost) -> None:
    host.add_disk("vda", major=254)
    host.add_disk("vdb", major=254, minor=16)
    host.add_interface("eth0")
    host.add_interface("eth1", bus="pci0000:00/0000:00:05.0")
    collector = host.collector()

    host.set_disks({"vda": (100 * MIB, 50 * MIB), "vdb": (0, 0)})
    host.set_net({"eth0": (9_000_000, 8_000_000), "eth1": (0, 0)})
    collector.sample(monotonic_s=0.0)

    host.set_disks({"vda": (101 * MIB, 51 * MIB), "vdb": (MIB, 0)})
    host.set_net({"eth0": (9_001_000, 8_002_000), "eth1": (500, 500)})
    normal = _snap(collector, 1.0)
    assert normal.disk_total_io_read_bytes_per_sec == 2 * MIB
    assert _nics(normal) == {"eth0": (1000, 2000), "eth1": (500, 500)}

    # vda's counters reset (device re-added) and eth0 was re-created: they
    # contribute 0 for this interval; the others keep their real rates.
    host.set_disks({"vda": (4096, 0), "vdb": (2 * MIB, 0)})
    host.set_net({"eth0": (300, 100), "eth1": (1000, 1000)})
    reset = _snap(collector, 2.0)
    assert reset.disk_total_io_read_bytes_per_sec == MIB
    assert reset.disk_total_io_write_bytes_per_sec == 0
    assert _nics(reset) == {"eth0": (0, 0), "eth1": (500, 500)}

    host.set_disks({"vda": (4096 + MIB, 512), "vdb": (3 * MIB, 0)})
    host.set_net({"eth0": (1300, 600), "eth1": (1500, 1500)})
    after = _snap(collector, 3.0)
    assert after.disk_total_io_read_bytes_per_sec == 2 * MIB
    assert after.disk_total_io_write_bytes_per_sec == 512
    assert _nics(after) == {"eth0": (1000, 500), "eth1": (500, 500)}


def test_new_device_contributes_zero_until_it_has_a_previous_value(host: FakeHost) -> None:
    host.add_disk("vda", major=254)
    host.add_interface("eth0")
    collector = host.collector()
    collector.sample(monotonic_s=0.0)  # neither device in /proc yet
    host.set_disks({"vda": (500 * MIB, 0)})
    host.set_net({"eth0": (10**9, 10**9)})
    first = _snap(collector, 1.0)
    assert first.disk_total_io_read_bytes_per_sec == 0
    assert _nics(first) == {"eth0": (0, 0)}
    host.set_disks({"vda": (501 * MIB, 0)})
    host.set_net({"eth0": (10**9 + 10, 10**9 + 20)})
    second = _snap(collector, 2.0)
    assert second.disk_total_io_read_bytes_per_sec == MIB
    assert _nics(second) == {"eth0": (10, 20)}


def test_non_advancing_clock_gives_zero_rates_not_infinity(host: FakeHost) -> None:
    host.add_interface("eth0")
    collector = host.collector()
    host.set_net({"eth0": (0, 0)})
    collector.sample(monotonic_s=5.0)
    host.set_net({"eth0": (MIB, MIB)})
    assert _nics(_snap(collector, 5.0)) == {"eth0": (0, 0)}


# -- the real host ------------------------------------------------------------


def test_real_host_sample_is_sane() -> None:
    collector = MetricsCollector()
    assert collector.sample() is None
    time.sleep(0.2)
    snapshot = collector.sample()
    assert snapshot is not None
    assert 0.0 <= snapshot.cpu_overall_usage_percent <= 100.0
    assert snapshot.memory_total_bytes > 0
    assert 0 < snapshot.memory_usage_bytes <= snapshot.memory_total_bytes
    assert abs(snapshot.timestamp_unix_ms - time.time() * 1000) < 5_000
    names = [n.interface_name for n in snapshot.network_interfaces]
    assert "lo" not in names
    assert names == sorted(set(names))
    for nic in snapshot.network_interfaces:
        assert nic.rx_bytes_per_sec < 100 * 2**30
        assert nic.tx_bytes_per_sec < 100 * 2**30
    assert snapshot.disk_total_io_read_bytes_per_sec < 100 * 2**30
    assert snapshot.disk_total_io_write_bytes_per_sec < 100 * 2**30
