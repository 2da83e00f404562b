"""progress: where a ceremony stands — which phases are complete and which the witnesses confirmed.

Read from the transcript alone, so the runner and a notebook in JupyterLab see the same state and
apply the same rule: a phase starts only when every earlier phase is complete *and* confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ceremony.checkpoint import CONFIRMED
from ceremony.ledger import COMPLETED


@dataclass(frozen=True)
class PhaseStatus:
    """A phase as the transcript shows it: completed (with its line hash) and confirmed or not."""

    completion: Any | None = None
    confirmed: bool = False


class HasEvents(Protocol):
    """A workspace or a transcript: anything that lists the transcript's events."""

    def events(self) -> list[Any]: ...


def phase_status(source: HasEvents) -> dict[str, PhaseStatus]:
    """Completion and confirmation of each phase: a confirmation counts only for the latest
    completion of its phase, the one whose line hash the witnesses confirmed."""
    status: dict[str, PhaseStatus] = {}
    for event in source.events():
        if event.action == COMPLETED:
            status[event.phase] = PhaseStatus(event, False)
        elif event.action == CONFIRMED and event.phase in status:
            current = status[event.phase]
            head = (event.data or {}).get("confirmed_head")
            if current.completion is not None and head == current.completion.line_sha256:
                status[event.phase] = PhaseStatus(current.completion, True)
    return status
