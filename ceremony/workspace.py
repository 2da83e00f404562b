"""workspace: the directory a ceremony carries across the air gap — its files and phase state.

Binds the directory to one ceremony id and plan digest, writes outputs whole and never over an
existing file, and reads which phases are complete from the transcript. Never stores a secret.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ceremony import ledger
from ceremony.canonical import sha256_hex
from ceremony.errors import RefusedError, UsageError
from ceremony.evidence.layout import AFTER_SEAL_DIR, BINDING_FILE
from ceremony.files import read_regular, write_new_in
from ceremony.ledger import COMPLETED as COMPLETED  # the phase-completed action, for readers
from ceremony.ledger import FILE_WRITTEN, Admission
from ceremony.phases import Phase, predecessors
from ceremony.progress import PhaseStatus, phase_status

TRANSCRIPT_FILE = "transcript.jsonl"
ARCHIVE_FILE = "archive.tar"
KEEP = (
    "A workspace file is never overwritten: rerun the phase (it makes its outputs again), or "
    "start a new workspace."
)


@dataclass(frozen=True)
class Binding:
    """What makes a workspace belong to one ceremony: its id and the digest of the plan."""

    ceremony_id: str
    plan_sha256: str
    created: str

    def to_dict(self) -> dict[str, str]:
        return {
            "ceremony_id": self.ceremony_id,
            "plan_sha256": self.plan_sha256,
            "created": self.created,
        }


def host_name() -> str:
    """This machine's short name, safe for a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname()) or "host"


class Workspace:
    """The ceremony's directory: bound to one plan, holding every output and the transcript."""

    def __init__(self, root: Path, binding: Binding) -> None:
        self.root = root
        self.binding = binding

    @classmethod
    def open(cls, root: str | Path, ceremony_id: str, plan_sha256: str) -> Workspace:
        """Open (or start) the workspace for this ceremony; refuse one bound to another."""
        root = Path(root).resolve()
        marker = root / BINDING_FILE
        if marker.exists():
            binding = _read_binding(marker)
            if binding.ceremony_id != ceremony_id:
                raise RefusedError(
                    f"Workspace {root} belongs to ceremony {binding.ceremony_id!r}, "
                    f"not {ceremony_id!r}.",
                    "Use the workspace of this ceremony, or a new empty directory.",
                )
            if binding.plan_sha256 != plan_sha256:
                raise RefusedError(
                    f"The plan changed since workspace {root} was started "
                    f"(it was bound to plan sha256 {binding.plan_sha256[:16]}...).",
                    "Use the plan file the ceremony began with; a changed plan is a new ceremony.",
                )
            return cls(root, binding)
        if root.exists() and any(root.iterdir()):
            raise RefusedError(
                f"{root} is not empty and is not a ceremony workspace.",
                "Give a new or empty directory for the workspace.",
            )
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        binding = Binding(ceremony_id, plan_sha256, now)
        write_new_in(root, BINDING_FILE, _json_bytes(binding.to_dict()), remedy=KEEP)
        return cls(root, binding)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def exists(self, *parts: str) -> bool:
        return self.path(*parts).exists()

    def write_new(
        self, relative: str, data: bytes, *, phase: str, actor: str, action: str = FILE_WRITTEN
    ) -> Path:
        """A new workspace file, written whole and through no link; an existing one is kept,
        never replaced. Its path and digest go into the transcript first, so the next phase (on
        either side of the air gap) accepts it and nothing else."""
        self.transcript.append(
            phase, actor, action, {"path": relative, "sha256": sha256_hex(data), "size": len(data)}
        )
        return write_new_in(self.root, relative, data, remedy=KEEP)

    def admit(self, phase: str, actor: str) -> Admission:
        """Check, before PHASE runs, that the workspace holds exactly what the transcript says.

        Refuses (RefusedError naming the file) anything unexpected, changed, linked or special;
        removes, and records, what an interrupted attempt at PHASE left: a phase never adopts it."""
        admission = ledger.check(self.root, self.events(), phase)
        if admission.discarded:
            ledger.remove(self.root, admission.discarded)
            self.transcript.append(
                phase, actor, ledger.FILES_DISCARDED, {"paths": list(admission.discarded)}
            )
        return admission

    @property
    def sealed(self) -> bool:
        """True once the evidence archive exists: the sealed files must not change any more."""
        return self.exists(ARCHIVE_FILE)

    @property
    def transcript(self):
        """The transcript to append to: the sealed one, or after sealing its continuation."""
        from ceremony.transcript import Transcript

        if self.sealed:
            return Transcript(self.path(AFTER_SEAL_DIR, TRANSCRIPT_FILE))
        return Transcript(self.path(TRANSCRIPT_FILE))

    def events(self) -> list[Any]:
        """Every event: the sealed transcript's, then those recorded after sealing."""
        from ceremony.transcript import Transcript

        events = []
        for path in (self.path(TRANSCRIPT_FILE), self.path(AFTER_SEAL_DIR, TRANSCRIPT_FILE)):
            if path.exists():
                events += Transcript(path).events()
        return events

    def require_ready(self, phase: Phase) -> None:
        """Refuse a phase whose predecessors are not complete and confirmed: phases run in order,
        and none builds on a checkpoint the witnesses did not confirm (runner and lab alike)."""
        status = phase_status(self)
        missing = [
            p for p in predecessors(phase) if not status.get(p.number, PhaseStatus()).confirmed
        ]
        if missing:
            first = missing[0]
            raise RefusedError(
                f"Phase {phase.title} cannot run yet: phase {first.title} is not complete and "
                "confirmed by the witnesses.",
                f"Run phase {first.number} first and confirm its checkpoint (its notebook in "
                f"ceremony lab, or ceremony run PLAN --workspace {self.root} --phases "
                f"{first.number}).",
            )


def _json_bytes(record: Any) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode()


def _read_binding(marker: Path) -> Binding:
    try:
        data = json.loads(read_regular(marker).decode("utf-8"))
        return Binding(data["ceremony_id"], data["plan_sha256"], data["created"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(
            f"{marker} is damaged; the workspace cannot be trusted.",
            "Restore the workspace from its copy, or start a new one.",
        ) from None
