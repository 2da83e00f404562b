"""lab: the workbook in JupyterLab — parameterized copies of the phase notebooks on IPC kernels.

Prepares copies so the committed notebooks stay clean; never writes a PIN into a notebook (the
only parameters are the plan, the workspace and the mode).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ceremony.errors import UsageError
from ceremony.resources import notebooks_dir
from ceremony.runner import load_papermill

LAB_DIR = "lab"


def prepare_notebooks(plan: Path, workspace: Path, mode: str) -> Path:
    """Write the six phase notebooks, parameters filled in but not executed, into WORKSPACE/lab.

    A copy that exists already is kept as it is: it may hold a custodian's executed cells."""
    if not plan.is_file():
        raise UsageError(f"The plan {plan} does not exist.", "Give the reviewed plan file.")
    folder = workspace / LAB_DIR
    folder.mkdir(parents=True, exist_ok=True)
    papermill = load_papermill()
    parameters = {"plan": str(plan.resolve()), "workspace": str(workspace.resolve()), "mode": mode}
    for source in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        target = folder / source.name
        if not target.exists():
            papermill.execute_notebook(
                str(source), str(target), parameters=parameters, prepare_only=True, log_output=False
            )
    return folder


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
