"""steps.context: what every notebook step shares — the plan, the workspace, the phase, the mode.

Opens a phase (order and binding checked, start recorded), records refusals and completion in the
transcript, and shows results. Never reads a PIN itself except through ceremony.hsm.read_pin.
"""

from __future__ import annotations

import functools
import html
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ceremony.checkpoint import (
    ANSWER_REFUSED,
    CONFIRMED,
    Checkpoint,
    CheckpointItem,
    Confirmation,
    ask_confirmation,
)
from ceremony.errors import CeremonyError, RefusedError, UsageError
from ceremony.executed import LAB_NOTEBOOKS, confirmed_mark, keep_saved
from ceremony.ledger import STARTED
from ceremony.phases import Phase, phase, predecessors
from ceremony.pins import USER_PIN
from ceremony.plan import Plan, load_plan
from ceremony.workspace import COMPLETED, Workspace

# A strict rehearsal is a dress rehearsal: the local vault plays Azure, but the HSM gets none of a
# rehearsal's allowances (a token whose wrap deviates is refused as on the day).
STRICT_REHEARSAL = "strict-rehearsal"
MODES = ("ceremony", "rehearsal", STRICT_REHEARSAL)
REFUSED = "phase-refused"


@dataclass(frozen=True)
class StepResult:
    """What a step did, for the notebook reader: a few facts and the values to check."""

    title: str
    facts: tuple[tuple[str, str], ...] = ()
    items: tuple[CheckpointItem, ...] = ()
    notes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        lines = [self.title] + [f"  {k}: {v}" for k, v in self.facts]
        lines += [f"  {i.label}: {i.sha256}" for i in self.items]
        return "\n".join(lines + [f"  ! {n}" for n in self.notes])

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v)}</code></td></tr>"
            for k, v in self.facts
        )
        rows += "".join(
            f"<tr><td>{html.escape(i.label)}</td><td><code>{i.fingerprint.short}</code></td></tr>"
            for i in self.items
        )
        notes = "".join(f"<p>&#9888; {html.escape(n)}</p>" for n in self.notes)
        return f"<h4>{html.escape(self.title)}</h4><table>{rows}</table>{notes}"


@dataclass
class Context:
    """One phase in progress: the validated plan, its workspace and how the ceremony is run."""

    phase: Phase
    plan: Plan
    workspace: Workspace
    mode: str
    results: list[StepResult] = field(default_factory=list)

    @property
    def rehearsal(self) -> bool:
        """Not the real ceremony: the local vault may play Azure."""
        return self.mode != "ceremony"

    @property
    def allowances(self) -> bool:
        """A plain rehearsal, which tolerates (and records) an HSM that deviates."""
        return self.mode == "rehearsal"

    @property
    def actor(self) -> str:
        """The ceremony administrator, who drives the workbook."""
        return self.plan.with_role("administrator")[0].name

    def record(self, action: str, data: Any = None) -> Any:
        """Append one event for this phase to the transcript."""
        return self.workspace.transcript.append(self.phase.number, self.actor, action, data)

    def path(self, *parts: str) -> Path:
        return self.workspace.path(*parts)

    def write(self, relative: str, data: bytes) -> Path:
        """A new output of this phase, recorded in the transcript (path and digest) first."""
        return self.workspace.write_new(relative, data, phase=self.phase.number, actor=self.actor)

    def require_hsm_module(self) -> None:
        """Refuse, naming the phase, where the plan's PKCS#11 module is not on this machine."""
        if not Path(self.plan.hsm.module).exists():
            raise RefusedError(
                f"Phase {self.phase.title} needs the HSM, but its PKCS#11 module "
                f"{self.plan.hsm.module} is not on this machine.",
                "Run this phase on the offline machine that has the HSM attached.",
            )

    @contextmanager
    def hsm(self) -> Iterator[Any]:
        """A logged-in session on the plan's token; the PIN comes from CEREMONY_PIN."""
        from ceremony.hsm import open_session, read_pin

        self.require_hsm_module()
        pin = read_pin(USER_PIN, f"User PIN of token {self.plan.hsm.token!r} (hidden): ")
        with open_session(self.plan.hsm.module, self.plan.hsm.token, pin=pin) as session:
            yield session

    def vault(self) -> Any:
        """A connection to the plan's vault (Azure, or the rehearsal's local vault)."""
        from ceremony.vault import connect

        return connect(self.plan.vault.url, local_vault_dir=self.plan.vault.local_state)


def begin(
    phase_ref: str, plan: str | Path, workspace: str | Path, mode: str = "ceremony"
) -> Context:
    """Open a phase: validate the plan, bind the workspace, check the order (every earlier phase
    complete and confirmed), record the start. A refusal is recorded in the transcript."""
    if mode not in MODES:
        raise UsageError(f"Mode {mode!r} is unknown.", f"Use one of {', '.join(MODES)}.")
    current = phase(phase_ref)
    loaded = load_plan(plan)
    if loaded.vault.is_local and mode == "ceremony":
        raise RefusedError(
            "The plan's vault is the local rehearsal vault, but the mode is 'ceremony'.",
            "Rehearse with mode = 'rehearsal' (ceremony rehearse, ceremony run --rehearsal or "
            "ceremony lab --rehearsal); a real ceremony targets Azure.",
        )
    ws = Workspace.open(workspace, loaded.ceremony.id, loaded.sha256)
    ctx = Context(current, loaded, ws, mode)
    try:
        ws.require_ready(current)
        if _kernel_has_stdin():
            _match_paper_record(ctx)
        _keep_lab_notebooks(ctx)
        admission = ws.admit(current.number, ctx.actor)
    except CeremonyError as exc:
        _record_refusal(ctx, exc)
        raise
    ctx.record(
        STARTED,
        {
            "mode": mode,
            "notebook": current.notebook,
            "kernel": kernel_transport(),
            "workspace": admission.describe(),
        },
    )
    # The witnesses are told at the checkpoint what the workspace check found.
    ctx.results.append(
        StepResult("Workspace", notes=(f"Workspace check: {admission.describe()}.",))
    )
    return ctx


def _keep_lab_notebooks(ctx: Context) -> None:
    """In the lab, keep the executed notebooks of the confirmed earlier phases, as the runner
    does after each phase: the seal then holds them. One JupyterLab has not saved since its
    confirmation is named at this checkpoint."""
    folder = os.environ.get(LAB_NOTEBOOKS)
    if not folder:
        return
    unsaved = keep_saved(ctx.workspace, ctx.actor, Path(folder), predecessors(ctx.phase))
    notes = tuple(
        f"The executed notebook of phase {p.title} was not saved after its checkpoint was "
        "confirmed, so the workspace does not keep it."
        for p in unsaved
    )
    if notes:
        ctx.results.append(StepResult("Executed notebooks", notes=notes))


R = TypeVar("R")


def step(func: Callable[..., R]) -> Callable[..., R]:
    """Wrap a step so that a refusal is recorded in the transcript before it stops the notebook."""

    @functools.wraps(func)
    def run(ctx: Context, *args: Any, **kwargs: Any) -> R:
        try:
            result = func(ctx, *args, **kwargs)
        except CeremonyError as exc:
            _record_refusal(ctx, exc)
            raise
        if isinstance(result, StepResult):
            ctx.results.append(result)
        return result

    return run


def _match_paper_record(ctx: Context) -> None:
    """In JupyterLab, as under the runner: before a phase trusts the workspace,
    the operator types the last checkpoint's head words from the paper record (never shown)."""
    from ceremony import carried

    came = carried.last_witnessed(ctx.workspace.events())
    if came is not None:
        carried.match_paper_record(came, input)
        ctx.record(carried.RECEIVED, came.to_dict())


def _record_refusal(ctx: Context, exc: CeremonyError) -> None:
    ctx.record(REFUSED, exc.to_record())


def complete(ctx: Context) -> Checkpoint | Confirmed:
    """Record the phase as complete with everything the witnesses must check, and show it.

    In JupyterLab (a kernel with stdin) the witnesses confirm right here, after the checkpoint
    is shown, and a refused confirmation is recorded; under the runner the runner asks them
    after the notebook ends."""
    items = tuple(i for r in ctx.results for i in r.items)
    notes = tuple(n for r in ctx.results for n in r.notes)
    facts = tuple(f for r in ctx.results for f in r.facts)
    event = ctx.record(
        COMPLETED,
        {
            "checkpoint": [i.to_dict() for i in items],
            "facts": [list(f) for f in facts],
            "notes": list(notes),
            "mode": ctx.mode,
        },
    )
    checkpoint = Checkpoint(
        ctx.phase.number, ctx.phase.title, items, event.line_sha256, notes, facts
    )
    if not _kernel_has_stdin():
        return checkpoint
    from IPython.display import display

    display(checkpoint)  # everything the witnesses compare, before the question
    witnesses = [p.name for p in ctx.plan.with_role("witness")]
    try:
        confirmation = ask_confirmation(
            checkpoint,
            witnesses,
            ctx.plan.quorum.get("witness", 1),
            input,
            lambda answer: ctx.record(ANSWER_REFUSED, answer),
        )
    except CeremonyError as exc:
        _record_refusal(ctx, exc)
        raise
    ctx.record(CONFIRMED, confirmation.to_dict(checkpoint))
    return Confirmed(checkpoint, confirmation)


@dataclass(frozen=True)
class Confirmed:
    """A checkpoint the witnesses confirmed in the notebook: shown as one line that the lab
    looks for before it keeps the saved notebook."""

    checkpoint: Checkpoint
    confirmation: Confirmation

    def __repr__(self) -> str:
        names = ", ".join(self.confirmation.witnesses)
        return (
            f"Checkpoint after phase {self.checkpoint.title}: confirmed by {names} "
            f"({confirmed_mark(self.checkpoint.head)})."
        )


def kernel_transport() -> str | None:
    """The transport of the kernel this runs in ('ipc' under the runner), None outside Jupyter."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:  # pragma: no cover - ipykernel is a dependency
        return None
    return str(IPKernelApp.instance().transport) if IPKernelApp.initialized() else None


def _kernel_has_stdin() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    return bool(getattr(kernel, "_allow_stdin", False))
