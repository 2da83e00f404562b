"""ledger: what the transcript says the workspace holds, and the check that it holds exactly that.

The workspace crosses the air gap on media an insider may touch. Every file the workbook writes is
recorded (path and SHA-256) in the transcript before it is written, and a phase starts only on a
workspace in which every file, hidden or not, is one the transcript accounts for, unchanged. Never
follows a link, never reads a device, never adopts an output an interrupted attempt left behind.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from ceremony.errors import RefusedError
from ceremony.evidence.layout import AFTER_SEAL_DIR, BINDING_FILE, TRANSCRIPT
from ceremony.files import partial_name

FILE_WRITTEN = "file-written"  # a phase's output, recorded just before it is written
NOTEBOOK_KEPT = "notebook-kept"  # an executed notebook or its HTML, kept by the runner
FILES_DISCARDED = "files-discarded"  # outputs of an interrupted attempt, removed before a rerun
OUTPUTS_DECLARED = "outputs-declared"  # paths (a folder ends in "/") an attempt is about to make
SEALED = "sealed"  # the seal's outputs, recorded after it: {"files": {path: sha256}}
STARTED, COMPLETED = "phase-started", "phase-completed"
RECORDED = (FILE_WRITTEN, NOTEBOOK_KEPT)
# The ledger's own state: the binding and the transcripts, checked by their own readers.
OWN_FILES = frozenset({BINDING_FILE, TRANSCRIPT, f"{AFTER_SEAL_DIR}/{TRANSCRIPT}"})
REMEDY = (
    "Stop: nothing on the medium is used unaccounted. Find out who touched it and why; then go on "
    "from the copy the witnesses last confirmed, or begin a new ceremony."
)


@dataclass(frozen=True)
class Entry:
    """One file the transcript accounts for: its path, digest and the phase that wrote it."""

    path: str
    sha256: str
    phase: str
    action: str


@dataclass
class Ledger:
    """The workspace as the transcript describes it, folded from its events."""

    files: dict[str, Entry] = field(default_factory=dict)
    # Per phase: what its latest attempt since its last completion made or declared.
    unfinished: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def from_events(cls, events: Iterable[Any]) -> Ledger:
        ledger = cls()
        for event in events:
            ledger._apply(event.phase, event.action, event.data)
        return ledger

    def _apply(self, phase: str, action: str, data: Any) -> None:
        data = data if isinstance(data, dict) else {}
        if action == COMPLETED:
            self.unfinished.pop(phase, None)
        elif action == SEALED:
            self.unfinished.pop(phase, None)  # the seal is done: its outputs are accounted now
            files = data.get("files") if isinstance(data.get("files"), dict) else {}
            for path, digest in files.items():
                self.files[path] = Entry(path, str(digest), phase, action)
        elif action in RECORDED and isinstance(data.get("path"), str):
            self.files[data["path"]] = Entry(data["path"], str(data.get("sha256")), phase, action)
            if action == FILE_WRITTEN:
                self.unfinished.setdefault(phase, set()).add(data["path"])
        elif action == OUTPUTS_DECLARED:
            self.unfinished.setdefault(phase, set()).update(_strings(data.get("paths")))
        elif action == FILES_DISCARDED:
            for path in _strings(data.get("paths")):
                self.files.pop(path, None)
                self.unfinished.get(phase, set()).discard(path)

    def left_by_interrupted(self, phase: str, path: str) -> bool:
        """Whether PATH is an output the unfinished attempt of PHASE made or was about to make."""
        return any(
            path == made or (made.endswith("/") and path.startswith(made))
            for made in self.unfinished.get(phase, ())
        )

    def is_crash_leftover(self, path: str) -> bool:
        """A write's temporary file (`partial_name`) for a path the ledger knows: never read."""
        folder, name = PurePosixPath(path).parent, PurePosixPath(path).name
        known = set(self.files) | {p for made in self.unfinished.values() for p in made}
        return any(
            PurePosixPath(p).parent == folder and name == partial_name(PurePosixPath(p).name)
            for p in known
        )


@dataclass(frozen=True)
class Admission:
    """What the check found: how many files it accounted for and what it removed as leftovers."""

    accounted: int
    discarded: tuple[str, ...]

    def describe(self) -> str:
        text = f"every one of its {self.accounted} files is accounted for by the transcript"
        if self.discarded:
            text += f"; removed {len(self.discarded)} left by an interrupted attempt"
        return text


def scan(root: Path) -> list[str]:
    """Every regular file below ROOT as a relative POSIX path. Refuses, naming it, a link, a
    device, a pipe or socket, or a file with more than one hard link; follows nothing."""
    found: list[str] = []
    folders = [PurePosixPath()]
    while folders:
        folder = folders.pop()
        with os.scandir(root / folder) as entries:
            for entry in entries:
                relative = (folder / entry.name).as_posix()
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    folders.append(folder / entry.name)
                elif not stat.S_ISREG(info.st_mode):
                    _refuse(relative, f"is {_kind(info.st_mode)}")
                elif info.st_nlink > 1:
                    _refuse(relative, "is hard-linked to another file")
                else:
                    found.append(relative)
    return sorted(found)


def check(root: Path, events: Sequence[Any], phase: str | None = None) -> Admission:
    """Compare the workspace with the ledger; the admission lists the files to discard.

    Refuses the first file that is unexpected, changed, or not a plain file. Files that PHASE's
    own interrupted attempt made are listed for discarding (never adopted): the phase makes them
    again. So are the temporary files a crashed write left."""
    ledger = Ledger.from_events(events)
    discard: list[str] = []
    accounted = 0
    for path in scan(root):
        if path in OWN_FILES:
            accounted += 1
        elif ledger.is_crash_leftover(path) or (
            phase is not None and ledger.left_by_interrupted(phase, path)
        ):
            discard.append(path)
        elif path not in ledger.files:
            _refuse(path, "is not accounted for by the transcript (no phase wrote it)")
        elif _digest(root / path) != ledger.files[path].sha256:
            _refuse(path, "changed since the transcript recorded it")
        else:
            accounted += 1
    return Admission(accounted, tuple(discard))


def remove(root: Path, paths: Sequence[str]) -> None:
    """Delete the listed files (links are removed, never followed) and any folder left empty."""
    for path in paths:
        target = root / path
        target.unlink(missing_ok=True)
        for parent in target.parents:
            if parent == root:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty: something else still lives there
                break


def _digest(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        return sha256(handle.read()).hexdigest()


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a pipe or socket" if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else "not a file"


def _refuse(path: str, why: str) -> NoReturn:
    shown = path.encode("unicode_escape").decode("ascii")
    raise RefusedError(f"The workspace file {shown} {why}.", REMEDY)
