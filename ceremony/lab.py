"""lab: the workbook in JupyterLab — parameterized copies of the phase notebooks on IPC kernels.

Prepares fresh copies in a private folder every time (never in the workspace, which holds only
what the transcript accounts for), so the committed notebooks stay clean and nothing on the
carried medium is ever opened; when the lab ends, keeps the executed notebooks in the workspace.
Never writes a PIN into a notebook (the only parameters are the plan, the workspace and the
mode). The lab asks nothing of the internet (no news, no update check, no extension index).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from ceremony.errors import UsageError
from ceremony.evidence.layout import BINDING_FILE
from ceremony.executed import keep_saved
from ceremony.phases import PHASES
from ceremony.resources import notebooks_dir
from ceremony.runner import load_papermill

# An air-gapped machine has no internet to ask: no news feed, update check or extension index.
OFFLINE = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
)


def prepare_notebooks(plan: Path, workspace: Path, mode: str, folder: Path) -> Path:
    """Write the six phase notebooks, parameters filled in but not executed, into FOLDER.

    FOLDER must be new and private (the caller makes it for this lab alone): the lab opens only
    notebooks it has just written from the installed workbook, never one found on the medium."""
    if not plan.is_file():
        raise UsageError(f"The plan {plan} does not exist.", "Give the reviewed plan file.")
    folder.mkdir(mode=0o700)
    papermill = load_papermill()
    parameters = {"plan": str(plan.resolve()), "workspace": str(workspace.resolve()), "mode": mode}
    for source in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        papermill.execute_notebook(
            str(source),
            str(folder / source.name),
            parameters=parameters,
            prepare_only=True,
            log_output=False,
        )
    return folder


def keep_on_exit(plan: Path, workspace: Path) -> Callable[[Path], None]:
    """What the lab does with its notebooks' folder when it ends: keep in the workspace each
    executed notebook JupyterLab saved after its checkpoint was confirmed and that no later phase
    kept (the last phase's, or one the trainee stopped after), as `ceremony run` keeps them."""

    def keep(folder: Path) -> None:
        if not (workspace / BINDING_FILE).exists():
            return  # no phase ran: nothing to keep
        from ceremony.plan import load_plan
        from ceremony.workspace import Workspace

        loaded = load_plan(plan)
        ws = Workspace.open(workspace, loaded.ceremony.id, loaded.sha256)
        keep_saved(ws, loaded.with_role("administrator")[0].name, folder, PHASES)

    return keep


def lab_command(folder: Path, socket_dir: Path) -> list[str]:
    """The JupyterLab command line: notebooks in FOLDER, kernels over IPC rather than TCP.

    The kernels' socket files go into SOCKET_DIR: a short private directory keeps their paths
    under the Unix socket length limit and out of reach of other users."""
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or shutil.which(
        "jupyter"
    )
    if jupyter is None:
        raise UsageError("JupyterLab is not installed here.", "Run `make venv` first.")
    command = [
        jupyter,
        "lab",
        f"--notebook-dir={folder}",
        "--KernelManager.transport=ipc",
        f"--KernelManager.ip={socket_dir / 'kernel'}",
        *OFFLINE,
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    return command
