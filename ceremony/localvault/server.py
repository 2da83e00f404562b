"""localvault.server: runs the vault (uvicorn over TLS on 127.0.0.1) in a background thread.

Owns start-up (state dir, certificates, store, port) and clean shutdown, and the LocalVault context
manager that tests, notebooks and the command line use. Never serves on anything but loopback.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from ceremony.errors import UsageError, VaultError
from ceremony.localvault.access import LocalVaultAccess
from ceremony.localvault.app import build_app
from ceremony.localvault.auth import BearerGate
from ceremony.localvault.faults import Fault, FaultPlan
from ceremony.localvault.rules import Flavour
from ceremony.localvault.service import VaultService
from ceremony.localvault.statedir import StateDir
from ceremony.localvault.store import Store
from ceremony.localvault.tls import ensure_certificates

HOST = "127.0.0.1"
START_TIMEOUT = 30.0


def _bind(port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the proto
    # says TCP, and without it every TLS answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, but shutdown does not wait on idle keep-alive TLS connections.

    Closing an idle TLS connection waits for the peer's close_notify, which a pooled SDK client
    never sends; in-flight requests still finish before the remaining connections are cut.
    """

    async def _wait_tasks_to_complete(self) -> None:
        while self.server_state.tasks:
            await asyncio.sleep(0.05)
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()


class LocalVault:
    """A rehearsal Key Vault (or Managed HSM) serving HTTPS from `state_dir` while open.

    port=0 reuses the port this state dir served on last time when it is free (so kids stay the
    same across restarts), else picks a free one. `faults` takes Fault objects or their specs
    ("import:503", "import:429:2", "import:drop-after-commit"); see faults.Fault.parse.
    `strict`: no rehearsal allowance; the vault refuses everything Azure refuses, a zero-padded
    BYOK key included (by default it accepts one with a warning, for Debian's SoftHSM2 2.6).
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        managed_hsm: bool = False,
        port: int = 0,
        faults: Iterable[Fault | str] = (),
        strict: bool = False,
    ) -> None:
        self._state = StateDir(state_dir)
        self.managed_hsm = managed_hsm
        self.strict = strict
        self._port = port
        self.faults = FaultPlan(faults)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._socket: socket.socket | None = None
        self.url = ""

    @property
    def state_dir(self) -> Path:
        return self._state.root

    @property
    def ca_path(self) -> Path:
        """The CA certificate (PEM) that clients pass as connection_verify."""
        return self._state.ca_path

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LocalVault:
        """Serve until stop(); the URL is in .url and in the state dir's `url` file."""
        if self._server is not None:
            return self
        self._state.prepare()
        try:
            self._start()
        except BaseException:
            self._cleanup()
            raise
        return self

    def _open_store(self) -> Store:
        store = Store(self._state.database_path, self._state.master_key())
        self._store = store
        flavour = "managed-hsm" if self.managed_hsm else "keyvault"
        recorded = store.meta("flavour")
        if recorded is None:
            store.set_meta("flavour", flavour)
        elif recorded != flavour:
            raise UsageError(
                f"The state in {self._state.root} belongs to a {recorded} vault, not a {flavour}.",
                "Start it with the same flavour (--managed-hsm or not), or use another --state.",
            )
        return store

    def _choose_socket(self, store: Store) -> socket.socket:
        previous = store.meta("port")
        if self._port == 0 and previous:
            try:
                return _bind(int(previous))
            except OSError:
                pass
        try:
            return _bind(self._port)
        except OSError as exc:
            raise UsageError(
                f"Port {self._port} on {HOST} is not available: {exc.strerror}.",
                "Choose another --port, or 0 for any free port.",
            ) from exc

    def _start(self) -> None:
        ensure_certificates(self._state)
        token = self._state.token()
        store = self._open_store()
        sock = self._choose_socket(store)
        self._socket = sock
        port = sock.getsockname()[1]
        store.set_meta("port", str(port))
        self.url = f"https://{HOST}:{port}"
        service = VaultService(store, Flavour(self.managed_hsm), self.url, strict=self.strict)
        app = build_app(service, BearerGate(token, managed_hsm=self.managed_hsm), self.faults)
        config = uvicorn.Config(
            app,
            ssl_certfile=str(self._state.cert_path),
            ssl_keyfile=str(self._state.cert_key_path),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="localvault", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise VaultError(
                    f"The local vault on port {port} did not start.", "See the log above."
                )
            time.sleep(0.02)
        self._state.publish_url(self.url, strict=self.strict)

    def stop(self) -> None:
        """Stop serving, finish in-flight requests, close the store and release the state dir."""
        self._cleanup()

    def _cleanup(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._socket is not None:
            self._socket.close()
        if self._store is not None:
            self._store.close()
        self._state.withdraw_url()
        self._state.release()
        self._server = self._thread = self._store = self._socket = None

    def __enter__(self) -> LocalVault:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients --------------------------------------------------------------------------------

    def access(self) -> LocalVaultAccess:
        """Client-side view of this vault (URL, CA, token credential)."""
        return LocalVaultAccess(self._state.root)

    def credential(self) -> Any:
        return self.access().credential()

    def key_client(self, **kwargs: Any) -> Any:
        """An azure KeyClient pointed at this vault, trusting its CA, holding its token."""
        return self.access().key_client(**kwargs)

    def crypto_client(self, key_id: str, **kwargs: Any) -> Any:
        """An azure CryptographyClient for `key_id` (a kid of this vault)."""
        return self.access().crypto_client(key_id, **kwargs)
