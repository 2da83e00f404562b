"""lab_session: one JupyterLab session of `ceremony lab`, from start to a clean end.

Starts JupyterLab in its own session, with a private folder for its kernels' sockets, their kernel
spec (the workbook's launcher: no TCP listener) and, for reading, a read-only copy of the notebooks;
on exit or on TERM, HUP or INT it stops JupyterLab and every kernel it started and removes the
folder. Never leaves a process or a file behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from ceremony.executed import LAB_NOTEBOOKS
from ceremony.kernel import SAFE_IMPORTS
from ceremony.kernel_launcher import launch_command
from ceremony.lab import lab_command
from ceremony.resources import notebooks_dir

READING_COPY = "notebooks"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
STOP_GRACE = 10.0  # seconds JupyterLab gets to shut its kernels down before they are killed
AUTOSAVE_SECONDS = 2
SETTINGS = {
    "@jupyterlab/docmanager-extension:plugin": {
        "autosave": True,
        "autosaveInterval": AUTOSAVE_SECONDS,
    },
    # An air-gapped lab has no news to fetch: it does not ask whether to.
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
}


def reading_copy(into: Path) -> Path:
    """A read-only copy of the workbook's notebooks in INTO: reading never edits the checkout."""
    folder = into / READING_COPY
    shutil.copytree(notebooks_dir(), folder, ignore=shutil.ignore_patterns(".*"))
    for path in folder.rglob("*"):
        path.chmod(stat.S_IRUSR | (stat.S_IXUSR if path.is_dir() else 0))
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return folder


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_lab(
    notebooks: Callable[[Path], Path] = reading_copy,
    env: Mapping[str, str] | None = None,
    on_exit: Callable[[Path], None] | None = None,
) -> int:
    """JupyterLab on the notebooks that `notebooks` writes into the lab's private folder (default:
    a read-only copy of the workbook's), until it exits or this process is told to stop (TERM,
    HUP, INT): then JupyterLab and every kernel it started are stopped, `on_exit` is given the
    notebooks' folder (JupyterLab's last saves in it), and the private folder, with the notebooks
    and the kernels' sockets, is removed. It never opens a notebook it did not just write, and
    its kernels import nothing from the folder they run in. ENV is added to JupyterLab's (and so
    its kernels') environment."""
    private = Path(tempfile.mkdtemp(prefix="ceremony-lab-"))
    server: subprocess.Popen | None = None
    folder: Path | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise _Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        folder = notebooks(private)
        command = [*lab_command(folder, private), *_settings(private)]
        server_env = {
            **os.environ,
            **(env or {}),
            **SAFE_IMPORTS,
            "JUPYTER_PATH": _kernel_spec(private),
            LAB_NOTEBOOKS: str(folder),
        }
        # Its own session: a terminal's signals reach this process, which stops it in order.
        server = subprocess.Popen(command, env=server_env, start_new_session=True)
        return server.wait()
    except _Stopped as stopped:
        return 128 + stopped.signum
    finally:
        for signum in STOP_SIGNALS:  # a second signal must not interrupt the clean-up
            signal.signal(signum, signal.SIG_IGN)
        try:
            if server is not None:
                _stop_tree(server)
            if on_exit is not None and folder is not None:
                on_exit(folder)
        finally:
            _remove(private)
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _settings(private: Path) -> list[str]:
    """JupyterLab's settings and workspace state in the private folder (nothing is left in the
    user's home), with autosave every few seconds: the lab keeps the notebook JupyterLab saved
    once its checkpoint is confirmed, so that saved copy must follow the run closely."""
    settings = private / "settings"
    for plugin, values in SETTINGS.items():
        extension, name = plugin.split(":")
        (settings / extension).mkdir(parents=True, exist_ok=True)
        (settings / extension / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    return [
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={private / 'workspaces'}",
    ]


def _kernel_spec(private: Path) -> str:
    """A `python3` kernel spec ahead of the installed one: the workbook's launcher, which opens
    no TCP listener. Returns the JUPYTER_PATH that finds it first."""
    folder = private / "jupyter"
    spec = {
        "argv": launch_command("{connection_file}"),
        "display_name": "Python 3 (ceremony workbook)",
        "language": "python",
    }
    (folder / "kernels" / "python3").mkdir(parents=True)
    (folder / "kernels" / "python3" / "kernel.json").write_text(json.dumps(spec, indent=1))
    return os.pathsep.join(filter(None, (str(folder), os.environ.get("JUPYTER_PATH"))))


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
