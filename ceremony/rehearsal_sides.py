"""rehearsal_sides: the two sides of a rehearsal's air gap on one machine, and the medium between.

Each side has its own workspace folder and its own kernels' environment: the online side has no
HSM configuration and no HSM PIN, the offline side runs in a new network namespace where the
system allows one, and phase 05 sees only the signers' tokens. The workspace is carried between
the folders as on removable media, with the paper record of the last checkpoint, and the side
that receives it checks it (the runner's paper-record match and workspace admission) before it
goes on. Never reads a PIN from anywhere but the environment it is handed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ceremony import carried
from ceremony.events import KEK_TRUSTED, KEY_GENERATED
from ceremony.kernel import KernelBatch, kernel_home
from ceremony.ledger import STARTED
from ceremony.netns import AirGap
from ceremony.phases import OFFLINE, ONLINE, select
from ceremony.progress import phase_status
from ceremony.steps.context import STRICT_REHEARSAL
from ceremony.transcript import Transcript

ONLINE_NOTE = (
    "its kernels ran with no HSM configuration (no SOFTHSM2_CONF) and no HSM PIN in their "
    "environment, and phase 00 was told it is on the online side, where nothing touches the HSM"
)
STRICT_VAULT_NOTE = (
    "; the local vault standing in for Azure was strict, refusing what Azure refuses"
)
SIGNERS_NOTE = (
    "its kernel saw only the signers' own tokens (a SoftHSM2 directory of their own) and their "
    "PINs, never the ceremony HSM's token or PIN"
)


@dataclass(frozen=True)
class Leg:
    """Phases one side runs in one go, in its workspace folder, with its kernels' set-up."""

    side: str
    phases: str
    workspace: Path
    env: dict[str, str]
    prefix: tuple[str, ...] = ()
    note: str = ONLINE_NOTE

    def done_in(self, folder: Path) -> bool:
        """Every phase of this leg is confirmed in the workspace in `folder` (a resumed
        rehearsal skips the leg)."""
        status = phase_status(Transcript(folder / "transcript.jsonl"))
        return all(status.get(p.number) and status[p.number].confirmed for p in select(self.phases))

    def describe(self) -> str:
        return f"{self.side} side, phases {self.phases}"

    def kernels(self) -> KernelBatch:
        """Its kernels, for the pool to start one phase ahead: one per phase, and one more on
        the offline side, whose first run preflights itself."""
        count = len(select(self.phases)) + (1 if self.side == OFFLINE else 0)
        return KernelBatch(self.env, kernel_home(), count, self.prefix)


def legs(
    online: Path,
    offline: Path,
    envs: dict[str, dict[str, str]],
    air_gap: AirGap,
    *,
    strict_vault: bool = False,
) -> tuple[Leg, ...]:
    """The day's order: online 00–01, offline 00 and 02–03, online 04, then 05 with the signers."""
    cloud = ONLINE_NOTE + (STRICT_VAULT_NOTE if strict_vault else "")
    return (
        Leg(ONLINE, "00-01", online, envs[ONLINE], note=cloud),
        Leg(OFFLINE, "02-03", offline, envs[OFFLINE], air_gap.prefix, air_gap.how),
        Leg(ONLINE, "04", online, envs[ONLINE], note=cloud),
        Leg(ONLINE, "05", online, envs["signers"], note=SIGNERS_NOTE),
    )


def ran_strict(folder: Path) -> bool:
    """Whether the rehearsal in `folder` began strict: its phases recorded that mode."""
    return any(
        e.action == STARTED and isinstance(e.data, dict) and e.data.get("mode") == STRICT_REHEARSAL
        for e in Transcript(folder / "transcript.jsonl").events()
    )


def transcript_length(folder: Path) -> int:
    """Lines in a workspace folder's transcript; 0 when it has none yet."""
    path = folder / "transcript.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def newest(folders: Sequence[Path]) -> Path:
    """The folder holding the latest state of the workspace (the longest transcript): where a
    resumed rehearsal carries on from."""
    return max(folders, key=transcript_length)


def paper_record(folder: Path) -> str | None:
    """What the witnesses wrote down at the last checkpoint confirmed in `folder`: the first
    words of its head, which the receiving side must match."""
    came = carried.last_witnessed(Transcript(folder / "transcript.jsonl").events())
    return None if came is None else carried.paper_words(came.head)


def carry(source: Path, target: Path, say: Callable[[str], None]) -> None:
    """Copy the workspace from one side's folder to the other's, replacing what was there, as
    the medium is carried across; links are copied as links, for the receiver to refuse."""
    if source == target:
        return
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copytree(source, target, symlinks=True)
    count = sum(1 for p in target.rglob("*") if not p.is_dir())
    say(f"\nCarried the workspace across the air gap: {source} → {target} ({count} files).")


def left_on_token(folder: Path) -> list[str]:
    """The token objects this ceremony made and left behind, from its transcript: the keys it
    generated and the KEK the security officer trusted."""
    left = []
    for event in Transcript(folder / "transcript.jsonl").events():
        data = event.data if isinstance(event.data, dict) else {}
        if event.action == KEY_GENERATED:
            left.append(f"key {data.get('name')!r} (its label; CKA_ID {data.get('id')})")
        elif event.action == KEK_TRUSTED and data.get("installed_now"):
            left.append(f"trusted KEK {data.get('label')!r} (CKA_ID {data.get('id')})")
    return left
