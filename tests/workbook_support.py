"""Helpers for the workbook tests: the `ceremony` CLI in a subprocess, and one shared rehearsal.

The full rehearsal is expensive, so every test module that needs it gets the same one (run once
per test session). Rehearsals run in subprocesses: SoftHSM2 allows one token directory per process.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.listeners import KernelSeen, kernels_seen, listeners, process_tree

ROOT = Path(__file__).resolve().parents[1]
# Fixed PINs, so that the tests can look for them in every file the ceremony wrote.
PINS = {
    "CEREMONY_PIN": "hsm-pin-7f3a9c",
    "CEREMONY_SO_PIN": "so-pin-3d1e77",
    "CEREMONY_PIN_ADA": "ada-pin-51e2d0",
    "CEREMONY_PIN_CAROL": "carol-pin-0b8e47",
    "CEREMONY_PIN_CHEN": "chen-pin-c6d213",
    "CEREMONY_PIN_WANDA": "wanda-pin-9a4f66",
}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without PINs, Azure credentials or a SoftHSM directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CEREMONY_PIN", "AZURE_")) and k != "SOFTHSM2_CONF"
    }
    return {**env, **extra}


def ceremony(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600, answers: str = ""
):
    """Run `python -m ceremony ARGS` with ANSWERS on its standard input; capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ceremony", *args],
        input=answers,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def events(workspace: Path) -> list[dict]:
    """Transcript events (sealed transcript, then what was recorded after sealing)."""
    found = []
    for path in (workspace / "transcript.jsonl", workspace / ".after-seal" / "transcript.jsonl"):
        if path.exists():
            found += [json.loads(line) for line in path.read_text().splitlines()]
    return found


@dataclass(frozen=True)
class Rehearsed:
    """A finished `ceremony rehearse` run, and the TCP ports its processes listened on."""

    root: Path
    returncode: int
    stdout: str
    stderr: str
    # (pid, port) of each listening socket seen while it ran; pid is the rehearsal's or a kernel's
    listened: frozenset[tuple[int, int]] = frozenset()
    pid: int = 0
    kernels: frozenset[KernelSeen] = frozenset()

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def archive(self) -> Path:
        return self.workspace / "archive.tar"


def start_rehearsal(root: Path, pins: dict[str, str], **popen: Any) -> subprocess.Popen:
    """`ceremony rehearse --out ROOT` in the background, with these PINs in its environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "ceremony", "rehearse", "--out", str(root)],
        env=clean_env(**pins),
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        **popen,
    )


@functools.cache
def shared_rehearsal() -> Rehearsed:
    """One full rehearsal with the fixed PINs, shared by every test of the session."""
    base = Path(tempfile.mkdtemp(prefix="ceremony-rehearsal-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    root = base / "r"
    process = start_rehearsal(root, PINS, stdout=subprocess.PIPE)
    seen: set[tuple[int, int]] = set()
    kernels: set[KernelSeen] = set()

    def watch() -> None:  # every listener and kernel of the rehearsal, while it runs
        while process.poll() is None:
            tree = process_tree(process.pid)
            seen.update(listeners(tree))
            kernels.update(kernels_seen(tree))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = process.communicate(timeout=900)
    watcher.join()
    return Rehearsed(
        root,
        process.returncode,
        stdout,
        stderr,
        frozenset(seen),
        process.pid,
        frozenset(kernels),
    )


OFFLINE_TRANSCRIPT = Path("offline", "workspace", "transcript.jsonl")


def killed_rehearsal(
    root: Path, action: str, phase: str | None = None, pins: dict[str, str] | None = None
) -> None:
    """Start `ceremony rehearse --out ROOT` and SIGKILL its whole process group as soon as its
    transcript records ACTION (in PHASE, when given): a crash at a chosen point."""
    import signal

    process = start_rehearsal(
        root, PINS if pins is None else pins, stdout=subprocess.DEVNULL, start_new_session=True
    )
    # Either side's copy of the workspace: the online side's, or the offline side's.
    transcripts = [root / "workspace" / "transcript.jsonl", root / OFFLINE_TRANSCRIPT]
    deadline = time.monotonic() + 300
    try:
        while True:
            lines = [ln for t in transcripts if t.exists() for ln in t.read_text().splitlines()]
            found = [json.loads(line) for line in lines if line.endswith("}")]
            if any(e["action"] == action and phase in (None, e["phase"]) for e in found):
                return
            if process.poll() is not None:
                ended = process.stderr.read()[-2000:]
                raise AssertionError(f"the rehearsal ended before {action}: {ended}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {action} within 300 s")
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
