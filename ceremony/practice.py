"""practice: a practice ceremony in JupyterLab, for training a new custodian with one command.

Sets the stage `ceremony rehearse` uses — throwaway SoftHSM2 tokens, the local Managed HSM with its
KEK, the sample plan and an empty workspace — in a new folder, and opens JupyterLab on fresh
rehearsal-mode notebooks for it. The tokens' PINs are shown to the trainee (they open throwaway
tokens only) and reach the kernels through the lab's environment, never a notebook. Stopping the
lab stops JupyterLab, its kernels and the vault; the folder, with the evidence, stays.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ceremony.lab import keep_on_exit, prepare_notebooks
from ceremony.lab_session import run_lab
from ceremony.pins import SO_PIN, USER_PIN
from ceremony.rehearsal import (
    HSM_TOKEN,
    PEOPLE,
    PIN_FILE,
    Setup,
    new_pins,
    prepare_out,
    set_stage,
)

MODE = "rehearsal"


def practice_lab(out: str | Path, module: str | None = None, stream: TextIO = sys.stdout) -> int:
    """Set up a practice ceremony in OUT (new or empty) and run JupyterLab on it until stopped;
    JupyterLab's exit status."""
    from ceremony.softhsm import SoftHsm

    root = prepare_out(Path(out))

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    say(f"Practice ceremony in {root}")
    pins = new_pins(root, existing_token=False)
    plan, workspace = root / "plan.toml", root / "workspace"
    workspace.mkdir(mode=0o700)
    softhsm = SoftHsm(root / "softhsm", module)
    # One SoftHSM2 directory for the ceremony token and the signers' tokens: the lab's kernels
    # all share JupyterLab's environment, one machine playing both sides.
    setup = Setup(softhsm.module_path, HSM_TOKEN, softhsm.conf_path, softhsm.conf_path)
    with set_stage(root, setup, pins, say):
        say(briefing(root, pins))
        return run_lab(
            lambda private: prepare_notebooks(plan, workspace, MODE, private / "notebooks"),
            env={**softhsm.environ(), **pins},
            on_exit=keep_on_exit(plan, workspace),
        )


def briefing(root: Path, pins: dict[str, str]) -> str:
    """What the trainee is told before JupyterLab opens: the PINs, and how a phase goes."""
    others = "\n".join(
        f"    {name} = {pin}" for name, pin in pins.items() if name not in (USER_PIN, SO_PIN)
    )
    witnesses = ", ".join(name for name, role in PEOPLE if role == "witness")
    return f"""
Throwaway practice tokens (their PINs are in {root / PIN_FILE} too; JupyterLab's kernels get
them from its environment, so no notebook asks for one):
    {USER_PIN} = {pins[USER_PIN]}   (token {HSM_TOKEN!r}, the custodians' PIN)
    {SO_PIN} = {pins[SO_PIN]}   (its security officer)
  signers' PINs (each person's signing token or key file):
{others}

In JupyterLab open 00_preflight.ipynb, then Run > Run All Cells. At the checkpoint the page shows
every value the witnesses compare; type the first two words of the transcript head, then the
witness's name ({witnesses}). Each next phase first asks for the words of the head you wrote
down at the checkpoint before. Do 00 to 05 in order; the evidence archive is then
{root / "workspace" / "archive.tar"} (check it with `ceremony verify`).
Stop with Ctrl-C: JupyterLab, its kernels and the vault stop.
"""
