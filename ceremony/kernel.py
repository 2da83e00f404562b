"""kernel: the Jupyter kernel a ceremony notebook runs in — IPC sockets, private directory, PINs.

Talks to the kernel over Unix-domain (ipc) sockets in a 0700 directory, never over TCP; hands PINs
to the kernel only through its environment. Never writes a PIN into a file, parameter or log.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict, Unicode, default

PIN_PREFIX = "CEREMONY_PIN"


class IpcKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel listens on ipc:// sockets in a private directory."""

    extra_env = Dict(
        value_trait=Unicode(), help="Variables added to the kernel's environment only."
    ).tag(config=True)

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:
        # Socket files are <ip>-<port>; a short private directory keeps them under the Unix
        # socket path limit and out of reach of other users.
        self._socket_dir = tempfile.mkdtemp(prefix="ceremony-kernel-")
        return os.path.join(self._socket_dir, "k")

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        # PINs reach the kernel only when handed over explicitly, never by inheritance.
        inherited = kw.pop("env", None) or os.environ
        env = {k: v for k, v in inherited.items() if not k.startswith(PIN_PREFIX)}
        env.update(self.extra_env)
        return await super()._async_pre_start_kernel(env=env, **kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        socket_dir = getattr(self, "_socket_dir", None)
        if socket_dir and not restart:
            shutil.rmtree(socket_dir, ignore_errors=True)


def kernel_config(extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for papermill.execute_notebook that select the IPC kernel manager."""
    from traitlets.config import Config

    config = Config()
    config.IpcKernelManager.extra_env = dict(extra_env or {})
    return {"kernel_manager_class": IpcKernelManager, "config": config}
