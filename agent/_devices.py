"""Which block devices and network interfaces the agent's totals count.

Totals must describe the host's real I/O once: partitions, stacked devices
(device-mapper, md, VLANs, bonds, bridges) and purely virtual devices carry
traffic that is already counted on the physical device underneath, so they
are left out. The rules read sysfs (the ``sysfs`` argument, ``/sys`` in
production) because names alone cannot tell a partition from a disk or an
OpenVZ ``venet0`` uplink from a container's veth.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from fnmatch import fnmatchcase
from pathlib import Path

# Never whole physical disks, or ones whose I/O is not the host's own storage
# traffic (optical drives, floppies, network block devices that already show
# up as network traffic).
EXCLUDED_DISK_GLOBS: tuple[str, ...] = (
    "loop*",
    "ram*",
    "zram*",
    "fd*",
    "sr*",
    "nbd*",
    "rbd*",
    "nullb*",
    "dm-*",
    "md*",
)

# Loopback, container/VM plumbing, bridges, and tunnels/VPNs. A tunnel's
# traffic also crosses the uplink it is encapsulated in, so counting it
# would count those bytes twice; a host that really wants one counted names
# it in ``include``.
DEFAULT_EXCLUDED_INTERFACE_GLOBS: tuple[str, ...] = (
    "lo",
    "veth*",
    "docker*",
    "br-*",
    "bridge*",
    "virbr*",
    "lxcbr*",
    "lxdbr*",
    "podman*",
    "vnet*",
    "vmnet*",
    "tun*",
    "tap*",
    "cni*",
    "flannel*",
    "cali*",
    "cilium*",
    "weave*",
    "kube*",
    "ifb*",
    "dummy*",
    "vxlan*",
    "genev*",
    "gre*",
    "erspan*",
    "sit*",
    "ip6tnl*",
    "ip6gre*",
    "ip_vti*",
    "ip6_vti*",
    "tunl*",
    "nlmon*",
    "wg*",
    "tailscale*",
    "zt*",
)

_ARPHRD_LOOPBACK = 772
_IFF_LOOPBACK = 0x8


def _matches(name: str, globs: Sequence[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in globs)


def _is_virtual(entry: Path, sysfs: Path) -> bool:
    """True when a sysfs class/block entry resolves under ``devices/virtual``."""
    try:
        resolved = entry.resolve()
        root = sysfs.resolve()
    except OSError:
        return False
    try:
        parts = resolved.relative_to(root).parts
    except ValueError:
        return "/devices/virtual/" in f"{resolved}/"
    return parts[:2] == ("devices", "virtual")


def _has_entries(directory: Path) -> bool:
    try:
        return any(os.scandir(directory))
    except OSError:
        return False


def counted_disks(names: Collection[str], sysfs: Path) -> set[str]:
    """Names (as in /proc/diskstats) of the whole physical disks to sum.

    A device is counted when all of these hold:

    - it is a whole disk: ``<sysfs>/block/<dev>`` exists (partitions only
      appear nested, as ``<sysfs>/block/<disk>/<part>``);
    - its name does not match EXCLUDED_DISK_GLOBS (loop, ram, zram, fd, sr,
      nbd, rbd, nullb, dm-*, md*);
    - it is not virtual: ``<sysfs>/block/<dev>`` does not resolve under
      ``<sysfs>/devices/virtual/`` (loop, zram, dm, md, nbd all do);
    - it is not stacked: ``<sysfs>/block/<dev>/slaves`` is empty. Stacked
      devices (dm, md, bcache, ...) pass every I/O on to their members, which
      are counted instead, so nothing is counted twice.

    Without ``<sysfs>/block`` (odd containers) a name that extends another
    device's name with a digit suffix, ``p<digits>``, is taken for a partition.
    """
    block = sysfs / "block"
    if not block.is_dir():
        return {
            name
            for name in names
            if not _matches(name, EXCLUDED_DISK_GLOBS) and not _looks_like_partition(name, names)
        }
    counted: set[str] = set()
    for name in names:
        if _matches(name, EXCLUDED_DISK_GLOBS):
            continue
        entry = block / name.replace("/", "!")
        if not entry.exists() or _is_virtual(entry, sysfs) or _has_entries(entry / "slaves"):
            continue
        counted.add(name)
    return counted


def _looks_like_partition(name: str, names: Collection[str]) -> bool:
    for disk in names:
        if disk != name and name.startswith(disk):
            suffix = name[len(disk) :].removeprefix("p")
            if suffix.isdigit():
                return True
    return False


class InterfaceFilter:
    """Decides which network interfaces are the host's uplinks.

    - ``exclude`` globs (fnmatch) always win.
    - When ``include`` is non-empty it is an explicit allowlist: exactly the
      matching interfaces are counted and the automatic rules below are
      skipped (so an operator can count e.g. ``wg0`` on purpose).
    - Otherwise an interface is counted unless its name matches
      DEFAULT_EXCLUDED_INTERFACE_GLOBS, or sysfs says it is a loopback
      (type 772 or IFF_LOOPBACK), a bridge (``bridge/``), a bond master
      (``bonding/``) or stacked on another interface (a ``lower_*`` link:
      VLANs, macvlan, bond and bridge masters), whose traffic is already
      counted on the lower device. Being under ``devices/virtual`` is *not*
      a reason: OpenVZ's ``venet0`` uplink lives there.
    """

    def __init__(
        self, sysfs: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> None:
        self._class_net = sysfs / "class" / "net"
        self._include = tuple(include)
        self._exclude = tuple(exclude)

    def counts(self, name: str) -> bool:
        """True when ``name``'s traffic belongs in the network totals."""
        if _matches(name, self._exclude):
            return False
        if self._include:
            return _matches(name, self._include)
        if _matches(name, DEFAULT_EXCLUDED_INTERFACE_GLOBS):
            return False
        entry = self._class_net / name
        if not entry.exists():
            return True
        if self._is_loopback(entry):
            return False
        if (entry / "bridge").exists() or (entry / "bonding").exists():
            return False
        try:
            return not any(child.name.startswith("lower_") for child in os.scandir(entry))
        except OSError:
            return True

    @staticmethod
    def _is_loopback(entry: Path) -> bool:
        try:
            if int((entry / "type").read_text().strip()) == _ARPHRD_LOOPBACK:
                return True
            return bool(int((entry / "flags").read_text().strip(), 16) & _IFF_LOOPBACK)
        except (OSError, ValueError):
            return False
