"""kernel_launcher: starts a ceremony's IPython kernel with no network listener of its own.

ipykernel's IOPub thread binds a loopback TCP port (its "pipe") to forward the output of forked
subprocesses; a ceremony kernel needs none, so it starts without it and listens only on the IPC
sockets its manager chose. Never changes anything else about the kernel.
"""

from __future__ import annotations

import sys
from typing import Any

MODULE = "ceremony.kernel_launcher"


def launch_command(connection_file: str) -> list[str]:
    """This Python running this launcher; -P: nothing is imported from the working directory."""
    return [sys.executable, "-P", "-m", MODULE, "-f", connection_file]


def main() -> None:
    from ipykernel import iostream, kernelapp

    class IOPubThreadWithoutPipe(iostream.IOPubThread):
        """The IOPub thread without the TCP pipe (forked children's output is not forwarded)."""

        def __init__(self, socket: Any, pipe: bool = False, session: Any = False) -> None:
            super().__init__(socket, pipe=False, session=session)

    kernelapp.IOPubThread = IOPubThreadWithoutPipe  # the name kernelapp's init_iopub uses
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
