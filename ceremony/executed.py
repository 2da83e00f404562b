"""executed: the executed notebooks a ceremony keeps in its workspace, from the runner or the lab.

Each kept copy is recorded in the transcript before it is written and never replaces an earlier
one (a rerun is kept as `.2`, a failed run as `.failed`); after the seal they go beside the
archive, under .after-seal/. In JupyterLab the kernel has no copy of its own notebook: the lab
keeps the one JupyterLab saved, once that copy shows the witnesses' confirmation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ceremony.evidence.layout import AFTER_SEAL_DIR
from ceremony.ledger import NOTEBOOK_KEPT
from ceremony.phases import Phase
from ceremony.progress import phase_status
from ceremony.workspace import Workspace

# Set in a lab's kernels (and its own process): the private folder of the notebooks it opened.
LAB_NOTEBOOKS = "CEREMONY_LAB_NOTEBOOKS"


def confirmed_mark(head: str) -> str:
    """What a notebook shows once the witnesses confirmed the checkpoint with this head."""
    return f"transcript head {head} confirmed"


def keep_notebook(ws: Workspace, phase: Phase, actor: str, data: bytes, *, failed: bool) -> str:
    """Keep an executed notebook of PHASE under a name no earlier copy has; its relative path."""
    folder = f"{AFTER_SEAL_DIR}/notebooks" if ws.sealed else "notebooks"
    stem = Path(phase.notebook).stem + (".failed" if failed else "")
    attempt, relative = 1, f"{folder}/{stem}.ipynb"
    while ws.exists(relative):
        attempt += 1
        relative = f"{folder}/{stem}.{attempt}.ipynb"
    ws.write_new(relative, data, phase=phase.number, actor=actor, action=NOTEBOOK_KEPT)
    return relative


def html_name(kept: str) -> str:
    """Where the HTML rendering of a kept notebook goes: beside it."""
    return kept.removesuffix(".ipynb") + ".html"


def keep_saved(ws: Workspace, actor: str, folder: Path, phases: Iterable[Phase]) -> list[Phase]:
    """Keep, with its HTML, the notebook JupyterLab saved in FOLDER for each of PHASES whose
    checkpoint the witnesses confirmed and whose notebook is not kept yet. Returns the phases
    whose saved copy does not show the confirmation yet (saved before it, or never)."""
    from ceremony.notebook_html import render_notebook_html

    status = phase_status(ws)
    kept = {
        e.phase
        for e in ws.events()
        if e.action == NOTEBOOK_KEPT and str((e.data or {}).get("path", "")).endswith(".ipynb")
    }
    unsaved: list[Phase] = []
    for phase in phases:
        state = status.get(phase.number)
        if state is None or not state.confirmed or phase.number in kept:
            continue
        saved = folder / phase.notebook
        data = saved.read_bytes() if saved.is_file() else b""
        if confirmed_mark(state.completion.line_sha256).encode() not in data:
            unsaved.append(phase)
            continue
        relative = keep_notebook(ws, phase, actor, data, failed=False)
        html = render_notebook_html(data)
        ws.write_new(
            html_name(relative), html, phase=phase.number, actor=actor, action=NOTEBOOK_KEPT
        )
    return unsaved
