"""Which TCP ports a process tree listens on, read from /proc (Linux), for the no-listener tests."""

from __future__ import annotations

import os
from pathlib import Path

LISTEN = "0A"


def _listening_inodes() -> dict[str, int]:
    """socket inode -> port, for every TCP socket in LISTEN state on this machine."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
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
    inodes = _listening_inodes()
    found = set()
    for pid in pids:
        try:
            links = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:  # the process ended meanwhile
            continue
        for link in links:
            if link.startswith("socket:[") and link[8:-1] in inodes:
                found.add((pid, inodes[link[8:-1]]))
    return found
