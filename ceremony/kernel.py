"""kernel: the Jupyter kernel a ceremony notebook runs in — IPC sockets, private directory, PINs.

Talks to the kernel over Unix-domain (ipc) sockets in a 0700 directory, never over TCP; hands PINs
to the kernel only through its environment; the kernel imports nothing from its working directory.
Never writes a PIN into a file, parameter or log.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict, List, Unicode, default

from ceremony.kernel_launcher import launch_command
from ceremony.pins import is_pin_variable

# Neither Python nor IPython puts the working directory on sys.path: a kernel imports only what
# is installed, never a module planted where it runs.
SAFE_IMPORTS = {"PYTHONSAFEPATH": "1"}
SOCKET_PREFIX = "ceremony-kernel-"


def _remove_stale_socket_dirs() -> None:
    """Socket directories left by a runner that was killed (its PID is gone) are removed."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SOCKET_PREFIX}*-*"):
        pid = folder.name.removeprefix(SOCKET_PREFIX).split("-", 1)[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # removed meanwhile by another cleaner, or not ours
            continue


@functools.cache
def kernel_home() -> Path:
    """The folder phase kernels run in: private, empty, never the workspace (whose files the
    medium may have planted); removed when this process exits."""
    home = Path(tempfile.mkdtemp(prefix="ceremony-kernel-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


class IpcKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel listens on ipc:// sockets in a private directory."""

    extra_env = Dict(
        value_trait=Unicode(), help="Variables added to the kernel's environment only."
    ).tag(config=True)
    launch_prefix = List(
        Unicode(), help="A command the kernel is started under, such as a new network namespace."
    ).tag(config=True)

    @default("shutdown_wait_time")
    def _default_shutdown_wait_time(self) -> float:
        # A phase's kernel has written and recorded everything before the notebook ends; do not
        # wait seconds for it to exit after the last cell.
        return 1.0

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:
        # Socket files are <ip>-<port>; a short private directory keeps them under the Unix
        # socket path limit and out of reach of other users.
        _remove_stale_socket_dirs()
        self._socket_dir = tempfile.mkdtemp(prefix=f"{SOCKET_PREFIX}{os.getpid()}-")
        return os.path.join(self._socket_dir, "k")

    async def _async_start_kernel(self, **kw: Any) -> None:
        cwd = Path(kw.get("cwd") or Path.cwd())
        warm = POOL.take(dict(self.extra_env), cwd, tuple(self.launch_prefix))
        if warm is None:
            await self.cold_start(**kw)
            return
        self._adopt(warm)

    async def cold_start(self, **kw: Any) -> None:
        """Launch a new kernel process (what the pool does ahead of time)."""
        await super()._async_start_kernel(**kw)

    def _adopt(self, warm: IpcKernelManager) -> None:
        """Take over a kernel the pool started ahead: its process, sockets and connection file."""
        self._attempted_start = True
        self.kernel_id = warm.kernel_id
        self.connection_file = warm.connection_file
        self.load_connection_info(warm.get_connection_info())
        self._socket_dir = warm._socket_dir
        self._launch_args = warm._launch_args
        self.provisioner = warm.provisioner
        self.provisioner.parent = self
        warm._close_control_socket()
        warm.provisioner = None
        self._connect_control_socket()

    start_kernel = _async_start_kernel

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        """The workbook's kernel launcher (no IOPub TCP listener) instead of the kernel spec's."""
        connection = os.path.realpath(self.connection_file)
        return [*self.launch_prefix, *launch_command(connection), *(extra_arguments or [])]

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        # PINs reach the kernel only when handed over explicitly, never by inheritance.
        inherited = kw.pop("env", None) or os.environ
        env = {k: v for k, v in inherited.items() if not is_pin_variable(k)}
        env.update(self.extra_env)
        env.update(SAFE_IMPORTS)
        return await super()._async_pre_start_kernel(env=env, **kw)

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Ask the kernel to exit and let the pool reap it, instead of waiting here.

        A phase's kernel has recorded everything before its notebook ends; waiting for the
        process to exit would only delay the checkpoint. A kernel that does not exit within
        shutdown_wait_time is killed by the reaper."""
        if restart or now or not self.owns_kernel or self.provisioner is None:
            await super()._async_shutdown_kernel(now=now, restart=restart)
            return
        self.shutting_down = True
        process = self.provisioner.process
        await self._async_request_shutdown()
        socket_dir, self._socket_dir = getattr(self, "_socket_dir", None), None
        await self._async_cleanup_resources()
        self.provisioner = None
        POOL.reap(process, socket_dir, self.shutdown_wait_time)

    shutdown_kernel = _async_shutdown_kernel

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        socket_dir = getattr(self, "_socket_dir", None)
        if socket_dir and not restart:
            shutil.rmtree(socket_dir, ignore_errors=True)


@dataclass
class KernelBatch:
    """Kernels for `count` phases that run with one environment, directory and launch prefix."""

    env: dict[str, str]
    cwd: Path
    count: int
    prefix: tuple[str, ...] = ()

    @property
    def key(self) -> tuple:
        return (tuple(sorted(self.env.items())), os.path.realpath(self.cwd), self.prefix)


class KernelPool:
    """Kernels started one phase ahead, while the current phase runs: this saves each phase the
    kernel's start-up and the import of the workbook (nothing else runs in them beforehand).
    Batches follow one another: a two-sided rehearsal has the next side's first kernel ready
    while this side's last phase runs."""

    WARM_UP = "import ceremony.steps, ceremony.evidence, ceremony.vault, ceremony.hsm"

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._next: Future | None = None
        self._reapers: list[threading.Thread] = []
        self._batches: list[KernelBatch] = []

    def prepare(
        self, env: dict[str, str], cwd: Path, count: int, prefix: tuple[str, ...] = ()
    ) -> None:
        """Keep a kernel with this environment, directory and launch prefix ready for the next
        `count` phases."""
        batch = KernelBatch(dict(env), cwd, count, prefix)
        if self._next is not None and self._batches and self._batches[0].key == batch.key:
            self._batches[0].count = count  # already starting one for exactly these phases
            return
        self.prepare_batches([batch])

    def prepare_batches(self, batches: list[KernelBatch]) -> None:
        """Kernels for these batches of phases, in order, each started one phase ahead."""
        self.close()
        self._batches = [b for b in batches if b.count > 0]
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kernel")
        self._refill()

    def _refill(self) -> None:
        while self._batches and self._batches[0].count <= 0:
            self._batches.pop(0)
        if self._batches and self._executor is not None:
            head = self._batches[0]
            self._next = self._executor.submit(self._start, head.env, head.cwd, head.prefix)

    def take(
        self, env: dict[str, str], cwd: Path, prefix: tuple[str, ...] = ()
    ) -> IpcKernelManager | None:
        """The ready kernel when it was made for exactly this environment, directory and prefix."""
        wanted = KernelBatch(env, cwd, 1, prefix).key
        if self._next is None or not self._batches or self._batches[0].key != wanted:
            return None
        future, self._next = self._next, None
        self._batches[0].count -= 1
        self._refill()
        try:
            return future.result()
        except Exception:  # a failed early start falls back to an ordinary start
            return None

    def reap(self, process: Any, socket_dir: str | None, grace: float) -> None:
        """Wait for a kernel process to exit in the background; kill it after `grace` seconds."""

        def wait() -> None:
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if socket_dir:
                shutil.rmtree(socket_dir, ignore_errors=True)

        self._reapers = [t for t in self._reapers if t.is_alive()]
        thread = threading.Thread(target=wait, name="kernel-reaper", daemon=True)
        thread.start()
        self._reapers.append(thread)

    def close(self) -> None:
        """Stop a kernel nobody took and the pool's thread; wait for exiting kernels."""
        future, self._next, self._batches = self._next, None, []
        if future is not None:
            with contextlib.suppress(Exception):  # it never started: nothing to stop
                asyncio.run(future.result().shutdown_kernel(now=True))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for thread in self._reapers:
            thread.join()
        self._reapers = []

    def _start(self, env: dict[str, str], cwd: Path, prefix: tuple[str, ...]) -> IpcKernelManager:
        km = IpcKernelManager(kernel_name="python3", extra_env=env, launch_prefix=list(prefix))
        asyncio.run(km.cold_start(cwd=str(cwd)))
        client = km.blocking_client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            client.execute(self.WARM_UP, silent=True, store_history=False)
            client.get_shell_msg(timeout=60)
        finally:
            client.stop_channels()
        return km


POOL = KernelPool()
atexit.register(POOL.close)  # kernels exiting in the background are reaped before we exit


def kernel_config(
    extra_env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Keyword arguments for papermill.execute_notebook that select the IPC kernel manager."""
    from traitlets.config import Config

    config = Config()
    config.IpcKernelManager.extra_env = dict(extra_env or {})
    config.IpcKernelManager.launch_prefix = list(prefix)
    return {"kernel_manager_class": IpcKernelManager, "config": config}
