"""lab: the workbook in JupyterLab — parameterized copies of the phase notebooks on IPC kernels.

Prepares fresh copies in a private folder every time, so the committed notebooks stay clean and
nothing on the carried medium is ever opened; never writes a PIN into a notebook (the only
parameters are the plan, the workspace and the mode).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ceremony.errors import UsageError
from ceremony.kernel import SAFE_IMPORTS
from ceremony.runner import NOTEBOOKS, load_papermill

READ_ONLY = 0o444


def prepare_notebooks(plan: Path, workspace: Path, mode: str, folder: Path) -> Path:
    """Write the six phase notebooks, parameters filled in but not executed, into FOLDER.

    FOLDER must be new and private (the caller makes it for this lab alone): the lab opens only
    notebooks it has just written from the installed workbook, never one found on the medium."""
    if not plan.is_file():
        raise UsageError(f"The plan {plan} does not exist.", "Give the reviewed plan file.")
    folder.mkdir(mode=0o700)
    papermill = load_papermill()
    parameters = {"plan": str(plan.resolve()), "workspace": str(workspace.resolve()), "mode": mode}
    for source in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        papermill.execute_notebook(
            str(source),
            str(folder / source.name),
            parameters=parameters,
            prepare_only=True,
            log_output=False,
        )
    return folder


def reading_copy(folder: Path) -> Path:
    """Read-only copies of the workbook's notebooks in FOLDER (new), for reading them."""
    folder.mkdir(mode=0o700)
    for source in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        target = folder / source.name
        shutil.copyfile(source, target)
        target.chmod(READ_ONLY)
    return folder


def lab_environment() -> dict[str, str]:
    """The lab's environment: its kernels import nothing from the folder they run in."""
    return {**os.environ, **SAFE_IMPORTS}


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
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    return command
