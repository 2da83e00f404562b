"""runner: strings the phase notebooks together — papermill over an IPC kernel, checkpoints, resume.

Executes each phase's notebook, keeps it (and its HTML) in the workspace, shows the checkpoint and
records the witnesses' confirmation. Never passes a secret as a parameter: PINs go to the kernel's
environment only.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ceremony import errors
from ceremony.airgap import check_side
from ceremony.checkpoint import (
    CONFIRMED,
    Checkpoint,
    CheckpointItem,
    Confirmation,
    ask_confirmation,
    automatic_confirmation,
)
from ceremony.errors import CeremonyError, RefusedError, UsageError
from ceremony.files import write_new
from ceremony.kernel import POOL
from ceremony.phases import PHASES, Phase, select
from ceremony.plan import Plan, load_plan
from ceremony.resources import notebook
from ceremony.workspace import AFTER_SEAL_DIR, COMPLETED, Workspace

STAGING_DIR = ".run"
FAILED = "phase-failed"
NOTE = "note"
HSM_PHASES = ("00", "02", "03", "04")


@dataclass(frozen=True)
class PhaseStatus:
    """A phase as the transcript shows it: completed (with its line hash) and confirmed or not."""

    completion: Any | None = None
    confirmed: bool = False


@dataclass
class RunOptions:
    """How to run: which phases, rehearsal or not, and how checkpoints are confirmed."""

    phases: str | None = None
    rehearsal: bool = False
    auto_confirm: bool = False
    qr: bool = True
    kernel_env: dict[str, str] = field(default_factory=dict, repr=False)
    # False: kernel_env holds every PIN the kernels get (no environment, no prompts).
    collect_pins: bool = True
    # Start each phase's kernel while the phase before runs (needs collect_pins False).
    warm_kernels: bool = False
    ask: Callable[[str], str] = input
    after_phase: Callable[[Phase, Workspace], None] | None = None


@dataclass(frozen=True)
class RunReport:
    """What a run did: the phases it ran and the ones it found complete already."""

    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    workspace: Path


def phase_status(ws: Workspace) -> dict[str, PhaseStatus]:
    """Completion and confirmation of each phase, from the transcript."""
    status: dict[str, PhaseStatus] = {}
    for event in ws.events():
        if event.action == COMPLETED:
            status[event.phase] = PhaseStatus(event, False)
        elif event.action == CONFIRMED and event.phase in status:
            current = status[event.phase]
            head = (event.data or {}).get("confirmed_head")
            if current.completion is not None and head == current.completion.line_sha256:
                status[event.phase] = PhaseStatus(current.completion, True)
    return status


def checkpoint_of(phase: Phase, completion: Any) -> Checkpoint:
    """The checkpoint a phase-completed event describes, committed to by that event's hash."""
    data = completion.data or {}
    items = tuple(CheckpointItem.from_dict(i) for i in data.get("checkpoint", []))
    return Checkpoint(
        phase.number, phase.title, items, completion.line_sha256, tuple(data.get("notes", []))
    )


def phase_error(phase: Phase, ename: str, evalue: str) -> CeremonyError:
    """The CeremonyError a notebook raised, rebuilt in the runner with its class and one line."""
    cls = getattr(errors, ename, None)
    if not (isinstance(cls, type) and issubclass(cls, CeremonyError)):
        return CeremonyError(
            f"Phase {phase.title} failed: {ename}: {' '.join(evalue.split())}",
            "See the executed notebook in the workspace; fix the cause and rerun to resume.",
        )
    return cls(f"Phase {phase.title} stopped: {' '.join(evalue.split())}")


class Runner:
    """One `ceremony run`: a plan, its workspace and the phases to carry out."""

    def __init__(
        self,
        plan_path: str | Path,
        workspace: str | Path,
        options: RunOptions,
        out: TextIO = sys.stdout,
    ) -> None:
        self.options = options
        self.out = out
        self.plan: Plan = load_plan(plan_path)
        if self.plan.vault.is_local and not options.rehearsal:
            raise RefusedError(
                "This plan targets the local rehearsal vault.",
                "Run it with --rehearsal (or use ceremony rehearse); a real plan targets Azure.",
            )
        self.ws = Workspace.open(workspace, self.plan.ceremony.id, self.plan.sha256)
        self.actor = self.plan.with_role("administrator")[0].name
        self._renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="html")
        self._renders: list[Future] = []

    @property
    def mode(self) -> str:
        return "rehearsal" if self.options.rehearsal else "ceremony"

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def run(self) -> RunReport:
        ran, skipped = [], []
        selected = list(select(self.options.phases))
        if not self._preflighted_here() and PHASES[0] not in selected:
            self.say("This machine has no preflight in the transcript yet: running phase 00 first.")
            selected.insert(0, PHASES[0])
        if self.options.warm_kernels and not self.options.collect_pins:
            status = phase_status(self.ws)
            pending = [p for p in selected if p.number not in status]
            POOL.prepare(self.options.kernel_env, self.ws.root, len(pending))
        try:
            for phase in selected:
                try:
                    self._run_phase(phase, ran, skipped)
                except CeremonyError as exc:
                    exc.phase = phase.number  # type: ignore[attr-defined]
                    raise
        finally:
            POOL.close()
            self._finish_renders()
        return RunReport(tuple(ran), tuple(skipped), self.ws.root)

    def _finish_renders(self) -> None:
        """Wait for the HTML renderings of the executed notebooks (raising their errors)."""
        pending, self._renders = self._renders, []
        for future in pending:
            future.result()

    def _run_phase(self, phase: Phase, ran: list[str], skipped: list[str]) -> None:
        status = phase_status(self.ws).get(phase.number, PhaseStatus())
        fresh_preflight = phase is PHASES[0] and not self._preflighted_here()
        if status.confirmed and not fresh_preflight:
            self.say(f"Phase {phase.title}: complete and confirmed; not run again.")
            skipped.append(phase.number)
            return
        self._require_confirmed_before(phase)
        if status.completion is None or fresh_preflight:
            self._execute(phase)
            ran.append(phase.number)
            status = phase_status(self.ws)[phase.number]
        else:
            self.say(f"Phase {phase.title}: complete; its checkpoint still needs confirming.")
        self._checkpoint(phase, status.completion)
        if self.options.after_phase:
            self.options.after_phase(phase, self.ws)

    def _preflighted_here(self) -> bool:
        """Whether phase 00 ran on this machine (each side of the air gap preflights itself)."""
        host = socket.gethostname()
        return any(
            e.action == COMPLETED and e.phase == PHASES[0].number and e.host == host
            for e in self.ws.events()
        )

    def _require_confirmed_before(self, phase: Phase) -> None:
        status = phase_status(self.ws)
        for earlier in PHASES:
            if earlier.number >= phase.number:
                break
            if not status.get(earlier.number, PhaseStatus()).confirmed:
                raise RefusedError(
                    f"Phase {phase.title} cannot run yet: phase {earlier.title} is not complete "
                    "and confirmed by the witnesses.",
                    f"Run phase {earlier.number} first: ceremony run {self.plan.path} "
                    f"--workspace {self.ws.root} --phases {earlier.number}",
                )

    def _record(self, phase: Phase, action: str, data: Any) -> None:
        self.ws.transcript.append(phase.number, self.actor, action, data)

    def _execute(self, phase: Phase) -> None:
        if phase is PHASES[-1]:
            self._finish_renders()  # everything sealed must be on disk first
        note = check_side(phase, self.plan, rehearsal=self.options.rehearsal)
        self.say(f"\n=== Phase {phase.title} — {phase.purpose}")
        if note:
            self.say(f"NOTE: {note}")
            self._record(phase, NOTE, {"air_gap": note})
        env = {**self.options.kernel_env}
        if self.options.collect_pins:
            env.update(self._pins(phase))
        staging = self.ws.path(STAGING_DIR)
        staging.mkdir(exist_ok=True, mode=0o700)
        output = staging / phase.notebook
        output.unlink(missing_ok=True)
        try:
            execute_notebook(
                notebook(phase.notebook),
                output,
                {"plan": str(self.plan.path), "workspace": str(self.ws.root), "mode": self.mode},
                cwd=self.ws.root,
                env=env,
                out=self.out,
            )
        except NotebookFailed as failure:
            kept = self._keep(output, phase, failed=True)
            error = phase_error(phase, failure.ename, failure.evalue)
            last = self.ws.events()[-1] if self.ws.events() else None
            if not (last and last.phase == phase.number and last.action == "phase-refused"):
                self._record(phase, FAILED, {"error": failure.ename, "message": error.message})
            if kept:
                error.remedy = (error.remedy + f" The executed notebook is {kept}.").strip()
            raise error from None
        self._keep(output, phase, failed=False)

    def _keep(self, output: Path, phase: Phase, *, failed: bool) -> Path | None:
        """Move the executed notebook out of staging (never over an earlier one), with HTML."""
        if not output.exists():
            return None
        folder = (
            self.ws.path(AFTER_SEAL_DIR, "notebooks")
            if self.ws.sealed
            else self.ws.path("notebooks")
        )
        stem = Path(phase.notebook).stem + (".failed" if failed else "")
        attempt, target = 1, folder / f"{stem}.ipynb"
        while target.exists():
            attempt += 1
            target = folder / f"{stem}.{attempt}.ipynb"
        data = output.read_bytes()
        write_new(target, data)
        # The HTML rendering runs beside the next phase; it must exist before the seal.
        html = target.with_suffix(".html")
        self._renders.append(self._renderer.submit(lambda: write_new(html, render_html(data))))
        output.unlink()
        return target

    def _pins(self, phase: Phase) -> dict[str, str]:
        """PINs the phase needs: from this process's environment, else asked with a hidden prompt.

        Only these reach the kernel: it never inherits CEREMONY_PIN* variables by itself."""
        wanted: list[tuple[str, str, bool]] = []
        if phase.number in HSM_PHASES and Path(self.plan.hsm.module).exists():
            wanted.append(
                ("CEREMONY_PIN", f"Custodian: user PIN of HSM token {self.plan.hsm.token!r}", True)
            )
        if phase.number == "05":
            for person in self.plan.people:
                if person.signer.startswith("pkcs11:"):
                    prompt = (
                        f"{person.name} ({person.role}): PIN of your signing token, empty if absent"
                    )
                    wanted.append((person.pin_variable, prompt, False))
        pins: dict[str, str] = {}
        for variable, prompt, required in wanted:
            if self.options.kernel_env.get(variable):
                continue
            if os.environ.get(variable):
                pins[variable] = os.environ[variable]
                continue
            if not sys.stdin.isatty():
                if required:
                    raise UsageError(
                        f"Phase {phase.number} needs {variable}, and there is no terminal to ask.",
                        f"Set {variable} in the environment, or run in a terminal.",
                    )
                continue
            value = getpass.getpass(f"{prompt} (hidden): ")
            if value:
                pins[variable] = value
        return pins

    def _checkpoint(self, phase: Phase, completion: Any) -> None:
        checkpoint = checkpoint_of(phase, completion)
        self.say(checkpoint.render_text(qr=self.options.qr))
        witnesses = [p.name for p in self.plan.with_role("witness")]
        required = self.plan.quorum.get("witness", 1)
        confirmation: Confirmation
        if self.options.auto_confirm:
            confirmation = automatic_confirmation(witnesses, required)
            self.say(
                f"Confirmed automatically (rehearsal) for {', '.join(confirmation.witnesses)}."
            )
        else:
            confirmation = ask_confirmation(checkpoint, witnesses, required, self.options.ask)
            self.say(f"Confirmed by {', '.join(confirmation.witnesses)}.")
        self._record(phase, CONFIRMED, confirmation.to_dict(checkpoint))


class NotebookFailed(Exception):
    """A notebook stopped: the exception name and value the kernel reported."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue = ename, evalue


class _OutputLog(logging.Handler):
    """Streams papermill's cell output to the operator's terminal, indented under the phase."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.INFO)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing Cell"):
            message = "  ." + message.removeprefix("Executing").strip(" -").lower()
        elif message.startswith(
            ("Executing notebook", "Ending Cell", "Input Notebook", "Output Notebook")
        ):
            return
        for line in message.rstrip("\n").splitlines():
            print(f"  | {line}" if not line.startswith("  .") else line, file=self.out, flush=True)


def load_papermill() -> Any:
    """papermill, imported without a cost nothing here needs: jsonschema builds an RFC 3987
    grammar (~1 s, when rfc3987_syntax is installed) only to check "iri" formats, which no
    notebook schema uses. This process then checks no IRI formats at all."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import papermill

    return papermill


def execute_notebook(
    source: Path,
    output: Path,
    parameters: Mapping[str, Any],
    *,
    cwd: Path,
    env: Mapping[str, str],
    out: TextIO,
) -> None:
    """Run one notebook with papermill on an IPC kernel; raise NotebookFailed with its error."""
    papermill = load_papermill()
    from papermill.exceptions import PapermillExecutionError

    from ceremony.kernel import kernel_config

    if not source.exists():
        raise UsageError(f"Notebook {source} is missing.", "Give the path of an existing notebook.")
    logger = logging.getLogger("papermill")
    handler = _OutputLog(out)
    logger.addHandler(handler)
    previous, logger.propagate = logger.propagate, False
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=dict(parameters),
            kernel_name="python3",
            cwd=str(cwd),
            progress_bar=False,
            log_output=True,
            **kernel_config(dict(env)),
        )
    except PapermillExecutionError as exc:
        raise NotebookFailed(exc.ename, exc.evalue) from None
    except (RuntimeError, TimeoutError, OSError) as exc:  # dead kernel, start failure
        raise NotebookFailed(type(exc).__name__, f"the notebook kernel stopped: {exc}") from None
    finally:
        logger.removeHandler(handler)
        logger.propagate = previous
        logger.setLevel(level)


def render_html(notebook: bytes) -> bytes:
    """An HTML rendering of an executed notebook, for people without Jupyter."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.reads(notebook.decode("utf-8"), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    return body.encode("utf-8")
