"""kernel_launcher: starts a phase's IPython kernel with no network listener of its own.

ipykernel's IOPub thread binds a loopback TCP port (its "pipe") to forward the output of forked
subprocesses; a ceremony kernel needs none, so it starts without it and listens only on the IPC
sockets its manager chose. Never changes anything else about the kernel.
"""

from __future__ import annotations

from typing import Any

from ipykernel import iostream, kernelapp


class IOPubThreadWithoutPipe(iostream.IOPubThread):
    """The IOPub thread without the TCP pipe (forked children's output is not forwarded)."""

    def __init__(self, socket: Any, pipe: bool = False, session: Any = False) -> None:
        super().__init__(socket, pipe=False, session=session)


def main() -> None:
    kernelapp.IOPubThread = IOPubThreadWithoutPipe  # the name kernelapp's init_iopub uses
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
