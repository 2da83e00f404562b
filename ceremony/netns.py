"""netns: the offline side's air gap in a rehearsal on one machine — a new network namespace.

A kernel started under `unshare --net` has its own network stack with nothing configured (not
even loopback up), so nothing it runs can reach the vault or anything else; it still talks to its
manager over Unix-domain sockets, which live in the file system. Root may create the namespace;
elsewhere an unprivileged user namespace is asked for too, where the system allows one. Decides
once per process; never changes the host's network.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class AirGap:
    """How the offline side is cut off: the command its kernels start under, and in words."""

    prefix: tuple[str, ...]
    how: str

    @property
    def isolated(self) -> bool:
        return bool(self.prefix)


def _candidates() -> list[tuple[str, ...]]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    if os.geteuid() == 0:
        return [(unshare, "--net")]
    return [(unshare, "--user", "--map-root-user", "--net")]


def _works(prefix: tuple[str, ...]) -> str | None:
    """None when a command started under `prefix` runs; else why not, in a few words."""
    try:
        done = subprocess.run(
            [*prefix, "true"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


@functools.cache
def offline_air_gap() -> AirGap:
    """A fresh network namespace for the offline side's kernels where this system allows it;
    otherwise no isolation, and the reason, to be said once and recorded."""
    candidates = _candidates()
    if not candidates:
        return AirGap((), "no network namespace: the unshare command is not installed")
    reason = ""
    for prefix in candidates:
        reason = _works(prefix) or ""
        if not reason:
            kind = "" if os.geteuid() == 0 else "unprivileged user and "
            return AirGap(
                prefix,
                f"each offline kernel ran in a new {kind}network namespace ({' '.join(prefix)}): "
                "no network interface, not even loopback, so it could reach nothing",
            )
    return AirGap(
        (),
        f"no network namespace: this system refused one ({reason}); the offline phases ran "
        "with the machine's network, kept from them only by their separate environment",
    )
