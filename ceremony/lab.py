"""lab: the workbook in JupyterLab — parameterized copies of the phase notebooks on IPC kernels.

Prepares copies so the committed notebooks stay clean; never writes a PIN into a notebook (the
only parameters are the plan, the workspace and the mode). The lab asks nothing of the internet
(no news, no update check, no extension index) and leaves nothing running or behind when it ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

from ceremony.errors import UsageError
from ceremony.runner import NOTEBOOKS, load_papermill

LAB_DIR = "lab"
READING_COPY = "notebooks"
# An air-gapped machine has no internet to ask: no news feed, update check or extension index.
OFFLINE = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
STOP_GRACE = 10.0  # seconds JupyterLab gets to shut its kernels down before they are killed


def prepare_notebooks(plan: Path, workspace: Path, mode: str) -> Path:
    """Write the six phase notebooks, parameters filled in but not executed, into WORKSPACE/lab.

    A copy that exists already is kept as it is: it may hold a custodian's executed cells."""
    if not plan.is_file():
        raise UsageError(f"The plan {plan} does not exist.", "Give the reviewed plan file.")
    folder = workspace / LAB_DIR
    folder.mkdir(parents=True, exist_ok=True)
    papermill = load_papermill()
    parameters = {"plan": str(plan.resolve()), "workspace": str(workspace.resolve()), "mode": mode}
    for source in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
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
        *OFFLINE,
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    return command


def reading_copy(into: Path) -> Path:
    """A read-only copy of the workbook's notebooks in INTO: reading never edits the checkout."""
    folder = into / READING_COPY
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns(".*"))
    for path in folder.rglob("*"):
        path.chmod(stat.S_IRUSR | (stat.S_IXUSR if path.is_dir() else 0))
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return folder


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_lab(folder: Path | None) -> int:
    """JupyterLab on FOLDER (None: a read-only copy of the workbook's notebooks) until it exits,
    or until this process is told to stop (TERM, HUP, INT): then JupyterLab and every kernel it
    started are stopped, and the private folder with their sockets (and the copy) is removed."""
    private = Path(tempfile.mkdtemp(prefix="ceremony-lab-"))
    server: subprocess.Popen | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise _Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        command = lab_command(folder or reading_copy(private), private)
        # Its own session: a terminal's signals reach this process, which stops it in order.
        server = subprocess.Popen(command, env=os.environ.copy(), start_new_session=True)
        return server.wait()
    except _Stopped as stopped:
        return 128 + stopped.signum
    finally:
        for signum in STOP_SIGNALS:  # a second signal must not interrupt the clean-up
            signal.signal(signum, signal.SIG_IGN)
        if server is not None:
            _stop_tree(server)
        _remove(private)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_tree(server: subprocess.Popen) -> None:
    """Ask JupyterLab to shut down (it stops its kernels); kill whatever is left after the grace."""
    import psutil

    try:
        tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    tree[0].terminate()
    _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=STOP_GRACE)
    server.wait()


def _remove(folder: Path) -> None:
    """Remove the private folder, read-only copy included."""
    for path in (folder, *folder.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            path.chmod(stat.S_IRWXU)
    shutil.rmtree(folder, ignore_errors=True)
