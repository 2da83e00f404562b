"""What a process tree does, read from /proc (Linux): the TCP ports it listens on (for the
no-listener tests), and each ceremony kernel's network namespace and environment (for the tests
that the two sides of a rehearsal are apart)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"
KERNEL_LAUNCHER = b"ceremony.kernel_launcher"


@dataclass(frozen=True)
class KernelSeen:
    """A phase kernel as /proc showed it: its network namespace and what its environment held."""

    pid: int
    netns: str
    softhsm_conf: str | None
    pins: frozenset[str]  # the names of the CEREMONY_PIN* variables it was given


def network_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def kernels_seen(pids: set[int]) -> set[KernelSeen]:
    """Every ceremony kernel among the processes, with its namespace and environment."""
    found = set()
    for pid in pids:
        try:
            if KERNEL_LAUNCHER not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            netns = network_namespace(pid)
        except OSError:  # the process ended meanwhile
            continue
        env = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
        pins = frozenset(k for k in env if k.startswith("CEREMONY_PIN") or k == "CEREMONY_SO_PIN")
        found.add(KernelSeen(pid, netns, env.get("SOFTHSM2_CONF"), pins))
    return found


def _listening_inodes(pid: int) -> dict[str, int]:
    """socket inode -> port, for every TCP socket in LISTEN state in the process's namespace."""
    found = {}
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == LISTEN:
                found[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def process_tree(root: int) -> set[int]:
    """`root` and every process descended from it."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def listeners(pids: set[int]) -> set[tuple[int, int]]:
    """(pid, port) for each listening TCP socket the processes hold open."""
    found = set()
    for pid in pids:
        inodes = _listening_inodes(pid)
        try:
            links = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:  # the process ended meanwhile
            continue
        for link in links:
            if link.startswith("socket:[") and link[8:-1] in inodes:
                found.add((pid, inodes[link[8:-1]]))
    return found
