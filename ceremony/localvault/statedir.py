"""localvault.statedir: the vault's state directory: its files, their permissions, its lock.

Owns paths, 0700/0600 modes, create-exclusive secrets and the single-server lock. Never prints or
logs a secret file's content.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path
from typing import IO

from ceremony.errors import UsageError


class StateDir:
    """Where one vault keeps everything: keys database, TLS files, token, master key, URL."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self._lock: IO[bytes] | None = None

    @property
    def ca_path(self) -> Path:
        return self.root / "ca.pem"

    @property
    def cert_path(self) -> Path:
        return self.root / "server.pem"

    @property
    def cert_key_path(self) -> Path:
        return self.root / "server.key"

    @property
    def token_path(self) -> Path:
        return self.root / "token"

    @property
    def master_key_path(self) -> Path:
        return self.root / "master.key"

    @property
    def database_path(self) -> Path:
        return self.root / "vault.db"

    @property
    def url_path(self) -> Path:
        return self.root / "url"

    def prepare(self) -> None:
        """Create the directory 0700 (or tighten it to 0700) and take the single-server lock."""
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"{self.root} is not a directory.", "Give --state a directory path.")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        lock = open(self.root / "lock", "ab")  # noqa: SIM115 - held open for the server's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise UsageError(
                f"Another local vault is already serving from {self.root}.",
                "Stop it first, or give this one its own --state directory.",
            ) from exc
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def write_private(self, path: Path, data: bytes) -> None:
        """Create a 0600 file exclusively; never overwrite."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def secret(self, path: Path, make: bytes) -> bytes:
        """The secret stored at `path`, created from `make` on first use."""
        if not path.exists():
            self.write_private(path, make)
        if path.stat().st_mode & 0o077:
            raise UsageError(f"{path} is readable by other users.", f"Run: chmod 600 {path}")
        return path.read_bytes()

    def token(self) -> str:
        """The bearer token clients must present (file `token`, 0600)."""
        return self.secret(self.token_path, secrets.token_urlsafe(32).encode()).decode().strip()

    def master_key(self) -> bytes:
        """The key that encrypts private material at rest (file `master.key`, 0600)."""
        key = self.secret(self.master_key_path, secrets.token_bytes(32))
        if len(key) != 32:
            raise UsageError(f"{self.master_key_path} is damaged.", "Restore it from a backup.")
        return key

    def publish_url(self, url: str) -> None:
        """Write the `url` file atomically so clients find the running vault."""
        temporary = self.url_path.with_suffix(".tmp")
        temporary.write_text(url + "\n")
        os.replace(temporary, self.url_path)

    def withdraw_url(self) -> None:
        self.url_path.unlink(missing_ok=True)
