"""carried: a workspace that may have crossed the air gap, matched against the paper record
before anything trusts it.

The transcript's chain is not keyed: whoever holds the medium can rewrite it whole. What they
cannot rewrite is the head the witnesses wrote down at each checkpoint, so before a run the
operator types the first words of the last confirmed checkpoint's head from that paper, and no
file may be accounted for, after that checkpoint, to a phase it closed. Never shows the head it
asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ceremony.checkpoint import CHALLENGE_SAID, CHALLENGE_WORDS, CONFIRMED, MAX_ATTEMPTS
from ceremony.errors import RefusedError, UsageError
from ceremony.fingerprint import Fingerprint
from ceremony.ledger import FILE_WRITTEN
from ceremony.phases import PHASES

RECEIVED = "workspace-received"
REWRITTEN = (
    "Stop: the transcript on the medium is not the one the witnesses confirmed. Find out who "
    "touched the medium; go on only from a copy whose head matches the paper record."
)


@dataclass(frozen=True)
class Witnessed:
    """The last checkpoint the witnesses confirmed: its phase, head, and where it was."""

    phase: str
    head: str
    host: str

    def to_dict(self) -> dict[str, str]:
        return {"checkpoint": self.phase, "head": self.head, "confirmed_on": self.host}


def last_witnessed(events: Sequence[Any]) -> Witnessed | None:
    """The last confirmed checkpoint, None before the first. Refuses a transcript in which, after
    it, a file is accounted for to a phase it closed: nobody witnessed that line."""
    lines = {e.line_sha256: index for index, e in enumerate(events)}
    confirmations = [e for e in events if e.action == CONFIRMED and isinstance(e.data, dict)]
    found = next(
        (c for c in reversed(confirmations) if c.data.get("confirmed_head") in lines), None
    )
    if found is None or found.phase == PHASES[-1].number:
        return None  # none yet; or sealed, when the archive's own digest is the paper anchor
    for event in events[lines[found.data["confirmed_head"]] + 1 :]:
        if event.action == FILE_WRITTEN and "00" < event.phase <= found.phase:
            raise RefusedError(
                f"Transcript line {event.seq} accounts for a file to phase {event.phase} after "
                f"checkpoint {found.phase}, which the witnesses confirmed, closed it.",
                REWRITTEN,
            )
    return Witnessed(found.phase, found.data["confirmed_head"], found.host)


def paper_words(head: str) -> str:
    """The first words of a transcript head, as the witnesses write them down."""
    return " ".join(Fingerprint(bytes.fromhex(head)).word_list[:CHALLENGE_WORDS])


def match_paper_record(came: Witnessed, ask: Callable[[str], str]) -> None:
    """The operator types the first words of the head written down at the checkpoint; three
    mismatches refuse the workspace."""
    expected = paper_words(came.head)
    prompt = (
        f"Before this run trusts the workspace: from the paper record of checkpoint {came.phase} "
        f"({came.host}), type the first {CHALLENGE_SAID} words of the transcript head: "
    )
    for _ in range(MAX_ATTEMPTS):
        try:
            typed = ask(prompt)
        except EOFError:
            raise UsageError(
                "The paper record of the last checkpoint is asked for, and there is no one to "
                "answer (no terminal input).",
                "Run the ceremony in a terminal, with the witnesses' notes at hand.",
            ) from None
        if " ".join(typed.split()).lower() == expected.lower():
            return
        prompt = f"That is not it. Type the first {CHALLENGE_SAID} words from the paper record: "
    raise RefusedError(
        f"The transcript's head at checkpoint {came.phase} is not the one the witnesses wrote "
        f"down on {came.host}.",
        REWRITTEN,
    )
