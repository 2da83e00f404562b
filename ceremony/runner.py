"""runner: strings the phase notebooks together — papermill over an IPC kernel, checkpoints, resume.

Executes each phase's notebook, keeps it (and its HTML) in the workspace, shows the checkpoint and
records the witnesses' confirmation. Never passes a secret as a parameter: PINs go to the kernel's
environment only.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ceremony import carried, errors
from ceremony.airgap import check_side
from ceremony.checkpoint import (
    ANSWER_REFUSED,
    CONFIRMED,
    Checkpoint,
    CheckpointItem,
    Confirmation,
    ask_confirmation,
    automatic_confirmation,
)
from ceremony.errors import CeremonyError, RefusedError, UsageError
from ceremony.events import NOTE
from ceremony.executed import html_name, keep_notebook
from ceremony.kernel import POOL, kernel_home
from ceremony.ledger import NOTEBOOK_KEPT
from ceremony.phases import OFFLINE, ONLINE, PHASES, Phase, select
from ceremony.pins import SO_PIN, USER_PIN
from ceremony.plan import Plan, load_plan
from ceremony.progress import PhaseStatus, phase_status
from ceremony.resources import notebook
from ceremony.steps.context import REFUSED, STRICT_REHEARSAL
from ceremony.steps.preflight import PREFLIGHT_RECORDED
from ceremony.workspace import COMPLETED, Workspace

FAILED = "phase-failed"


@dataclass
class RunOptions:
    """How to run: which phases, rehearsal or not, and how checkpoints are confirmed."""

    phases: str | None = None
    rehearsal: bool = False
    strict: bool = False  # a rehearsal without the HSM allowances (a dress rehearsal)
    auto_confirm: bool = False
    qr: bool = True
    kernel_env: dict[str, str] = field(default_factory=dict, repr=False)
    # False: kernel_env holds every PIN the kernels get (no environment, no prompts).
    collect_pins: bool = True
    # Start each phase's kernel while the phase before runs (needs collect_pins False).
    warm_kernels: bool = False
    # The caller prepared the kernel pool for this run and the runs after it (a two-sided
    # rehearsal), and closes it.
    kernels_prepared: bool = False
    ask: Callable[[str], str] = input
    after_phase: Callable[[Phase, Workspace], None] | None = None
    # A two-sided rehearsal: the command each kernel starts under (the offline side's network
    # namespace), how this side is cut off, recorded with every phase in place of the one-machine
    # note, and the head words the other side's witnesses wrote down, checked even under
    # auto_confirm when the workspace is received.
    kernel_prefix: tuple[str, ...] = ()
    side_note: str | None = None
    paper_record: str | None = None


@dataclass(frozen=True)
class RunReport:
    """What a run did: the phases it ran, the checkpoints it had confirmed (of phases run now or
    completed before), and the phases it found complete and confirmed already."""

    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    workspace: Path
    confirmed: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for the operator: what this run did, then what it left alone."""
        done = [f"ran phase(s) {', '.join(self.ran)}"] if self.ran else []
        earlier = [p for p in self.confirmed if p not in self.ran]
        if earlier:
            done.append(f"confirmed the checkpoint of phase(s) {', '.join(earlier)}")
        text = "; ".join(done) or "nothing new"
        if self.skipped:
            text += f"; already complete and confirmed: {', '.join(self.skipped)}"
        return f"Done: {text}. Workspace: {self.workspace}"


def checkpoint_of(phase: Phase, completion: Any) -> Checkpoint:
    """The checkpoint a phase-completed event describes, committed to by that event's hash."""
    data = completion.data or {}
    items = tuple(CheckpointItem.from_dict(i) for i in data.get("checkpoint", []))
    facts = tuple((str(label), str(value)) for label, value in data.get("facts", []))
    return Checkpoint(
        phase.number,
        phase.title,
        items,
        completion.line_sha256,
        tuple(data.get("notes", [])),
        facts,
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
        self._renders: list[tuple[Phase, str, Future]] = []
        self._private = Path()
        self._received = False  # the paper record was matched in this run
        self.side = ONLINE
        self._confirmed: list[str] = []  # checkpoints confirmed by this run

    @property
    def mode(self) -> str:
        if not self.options.rehearsal:
            return "ceremony"
        return STRICT_REHEARSAL if self.options.strict else "rehearsal"

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def run(self) -> RunReport:
        ran: list[str] = []
        skipped: list[str] = []
        self._confirmed.clear()
        selected = list(select(self.options.phases))
        # A run with an offline phase is on the HSM's side of the air gap; any other run is on
        # the online side, where nothing touches the HSM's module, a token or its PIN.
        self.side = OFFLINE if any(p.side == OFFLINE for p in selected) else ONLINE
        if not self._preflighted_here() and PHASES[0] not in selected:
            self.say(
                f"This {self.side} side has no preflight in the transcript yet: running phase 00 "
                "first."
            )
            selected.insert(0, PHASES[0])
        # The notebooks being executed, until they are kept: private, never in the workspace.
        self._private = Path(tempfile.mkdtemp(prefix="ceremony-run-"))
        current = selected[0]
        try:
            self._admit(current)
            warm = self.options.warm_kernels and not self.options.collect_pins
            if warm and not self.options.kernels_prepared:
                status = phase_status(self.ws)
                pending = [p for p in selected if p.number not in status]
                POOL.prepare(
                    self.options.kernel_env,
                    kernel_home(),
                    len(pending),
                    self.options.kernel_prefix,
                )
            for current in selected:
                self._run_phase(current, ran, skipped)
        except CeremonyError as exc:
            exc.phase = current.number  # type: ignore[attr-defined]
            raise
        finally:
            if not self.options.kernels_prepared:
                POOL.close()
            self._finish_renders()
            shutil.rmtree(self._private, ignore_errors=True)
        return RunReport(tuple(ran), tuple(skipped), self.ws.root, tuple(self._confirmed))

    def receive(self, phase: Phase) -> None:
        """The workspace may have crossed the air gap since the last checkpoint: before this
        run trusts it, the operator matches that checkpoint's head with the paper record
        (automatic in a rehearsal, which never leaves one machine). Refusals are recorded."""
        with self._refusal_recorded(phase):
            came = carried.last_witnessed(self.ws.events())
            paper = self.options.paper_record
            if came is None or (self.options.auto_confirm and paper is None):
                return
            carried.match_paper_record(came, self.options.ask if paper is None else lambda _: paper)
        self._record(phase, carried.RECEIVED, came.to_dict())
        self.say(f"Transcript matches the paper record of checkpoint {came.phase}.")

    def _admit(self, phase: Phase) -> None:
        """The workspace must hold exactly what the transcript accounts for before PHASE runs;
        a refusal is recorded and names the file."""
        with self._refusal_recorded(phase):
            admission = self.ws.admit(phase.number, self.actor)
        self.say(f"Workspace check: {admission.describe()}.")

    @contextlib.contextmanager
    def _refusal_recorded(self, phase: Phase) -> Iterator[None]:
        """A refusal raised inside goes into the transcript before it stops the run."""
        try:
            yield
        except CeremonyError as exc:
            self._record(phase, REFUSED, exc.to_record())
            raise

    def _finish_renders(self, *, wait: bool = True) -> None:
        """Keep the HTML renderings of the executed notebooks in the workspace, recorded like
        every other file: those finished (raising their errors), or all of them with `wait`.
        A rendering still under way has written nothing, so the workspace check is not upset."""
        pending, self._renders = self._renders, []
        for phase, relative, future in pending:
            if wait or future.done():
                self._keep_file(phase, relative, future.result())
            else:
                self._renders.append((phase, relative, future))

    def _run_phase(self, phase: Phase, ran: list[str], skipped: list[str]) -> None:
        status = phase_status(self.ws).get(phase.number, PhaseStatus())
        fresh_preflight = phase is PHASES[0] and not self._preflighted_here()
        if status.confirmed and not fresh_preflight:
            self.say(f"Phase {phase.title}: complete and confirmed; not run again.")
            skipped.append(phase.number)
            return
        with self._refusal_recorded(phase):
            self.ws.require_ready(phase)
        if not self._received:
            self.receive(phase)
            self._received = True
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
        """Whether phase 00 ran on this machine for this side (each side of the air gap
        preflights itself; a rehearsal plays both sides on one machine)."""
        host = socket.gethostname()
        here = [e for e in self.ws.events() if e.phase == PHASES[0].number and e.host == host]
        sides = {(e.data or {}).get("side") for e in here if e.action == PREFLIGHT_RECORDED}
        return self.side in sides and any(e.action == COMPLETED for e in here)

    def _record(self, phase: Phase, action: str, data: Any) -> None:
        self.ws.transcript.append(phase.number, self.actor, action, data)

    def _execute(self, phase: Phase) -> None:
        # The seal needs every rendering; other phases keep those that are done meanwhile.
        self._finish_renders(wait=phase is PHASES[-1])
        self._admit(phase)
        self.say(f"\n=== Phase {phase.title} — {phase.purpose}")
        if self.options.side_note is not None:
            self.say(f"NOTE: {self.side} side: {self.options.side_note}")
            self._record(phase, NOTE, {"side": self.side, "air_gap": self.options.side_note})
        elif note := check_side(phase, self.plan, rehearsal=self.options.rehearsal):
            self.say(f"NOTE: {note}")
            self._record(phase, NOTE, {"air_gap": note})
        env = {**self.options.kernel_env}
        if self.options.collect_pins:
            env.update(self._pins(phase))
        output = self._private / phase.notebook
        output.unlink(missing_ok=True)
        try:
            execute_notebook(
                notebook(phase.notebook),
                output,
                self._parameters(phase),
                cwd=kernel_home(),
                env=env,
                out=self.out,
                prefix=self.options.kernel_prefix,
            )
        except NotebookFailed as failure:
            error = phase_error(phase, failure.ename, failure.evalue)
            events = self.ws.events()
            last = events[-1] if events else None
            if not (last and last.phase == phase.number and last.action == REFUSED):
                self._record(phase, FAILED, {"error": failure.ename, "message": error.message})
            kept = self._keep(output, phase, failed=True)
            if kept:
                error.remedy = (error.remedy + f" The executed notebook is {kept}.").strip()
            raise error from None
        self._keep(output, phase, failed=False)

    def _keep(self, output: Path, phase: Phase, *, failed: bool) -> Path | None:
        """Keep the executed notebook in the workspace (never over an earlier one), recorded in
        the transcript; its HTML rendering follows beside the next phase."""
        if not output.exists():
            return None
        data = output.read_bytes()
        relative = keep_notebook(self.ws, phase, self.actor, data, failed=failed)
        self._renders.append((phase, html_name(relative), self._renderer.submit(render_html, data)))
        output.unlink()
        return self.ws.path(relative)

    def _keep_file(self, phase: Phase, relative: str, data: bytes) -> Path:
        return self.ws.write_new(
            relative, data, phase=phase.number, actor=self.actor, action=NOTEBOOK_KEPT
        )

    def _parameters(self, phase: Phase) -> dict[str, str]:
        """The notebook's parameters: never a secret. Phase 00 is told which side it is on."""
        parameters = {
            "plan": str(self.plan.path),
            "workspace": str(self.ws.root),
            "mode": self.mode,
        }
        return {**parameters, "side": self.side} if phase is PHASES[0] else parameters

    def _pins(self, phase: Phase) -> dict[str, str]:
        """PINs the phase needs: from this process's environment, else asked with a hidden prompt.

        Only these reach the kernel: it never inherits CEREMONY_PIN* variables by itself."""
        wanted: list[tuple[str, str, bool]] = []
        hsm = self.plan.hsm
        on_hsm_side = phase.side == OFFLINE or (phase is PHASES[0] and self.side == OFFLINE)
        if on_hsm_side and Path(hsm.module).exists():
            wanted.append((USER_PIN, f"Custodian: user PIN of HSM token {hsm.token!r}", True))
            if phase.number == "03" and hsm.wrap_with_trusted:
                wanted.append((SO_PIN, f"Security officer: SO PIN of token {hsm.token!r}", True))
        if phase.number == "05":
            for person in self.plan.people:
                what = _SECRET_OF_SIGNER.get(person.signer.split(":", 1)[0])
                if what:
                    prompt = f"{person.name} ({person.role}): {what}, empty if absent"
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
            with self._refusal_recorded(phase):
                confirmation = ask_confirmation(
                    checkpoint,
                    witnesses,
                    required,
                    self.options.ask,
                    lambda answer: self._record(phase, ANSWER_REFUSED, answer),
                )
            self.say(f"Confirmed by {', '.join(confirmation.witnesses)}.")
        self._record(phase, CONFIRMED, confirmation.to_dict(checkpoint))
        self._confirmed.append(phase.number)


# What a signer types in phase 05, by the scheme of its signer reference.
_SECRET_OF_SIGNER = {
    "pkcs11": "PIN of your signing token",
    "file": "passphrase of your signing key file",
}


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
    prefix: tuple[str, ...] = (),
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
            # Written once, when it ends (failed or not), not after every cell: each write
            # validates the whole notebook, which costs more than most cells do.
            request_save_on_cell_execute=False,
            **kernel_config(dict(env), prefix),
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
    """An HTML rendering of an executed notebook, for people without Jupyter; self-contained."""
    from ceremony.notebook_html import render_notebook_html

    return render_notebook_html(notebook)
