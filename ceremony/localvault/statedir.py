"""localvault.statedir: the vault's state directory: its files, their permissions, its lock.

Owns paths, 0700/0600 modes, create-exclusive secrets and the single-server lock. Trusts only a
directory, and files in it, that the user running the vault owns and that are not links: a state
planted by someone else would hand them the vault's keys. Never prints or logs a secret file's
content.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import stat
from pathlib import Path
from typing import IO

from ceremony.errors import UsageError

# What the `mode` file says: refuses all Azure refuses, or tolerates SoftHSM2 2.6 with a warning.
STRICT, REHEARSAL = "strict", "rehearsal"


class StateDir:
    """Where one vault keeps everything: keys database, TLS files, token, master key, URL."""

    def __init__(self, root: Path | str) -> None:
        # Not resolved: a link in place of the directory itself must be seen, and refused.
        self.root = Path(root).expanduser().absolute()
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
        """Create the directory 0700 (or tighten it to 0700), check that it and everything in it
        is this user's own and no link, and take the single-server lock."""
        if self.root.is_symlink() or (self.root.exists() and not self.root.is_dir()):
            raise UsageError(
                f"{self.root} is a link or not a directory.", "Give --state a real directory."
            )
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _require_own(self.root, os.lstat(self.root))
        os.chmod(self.root, 0o700)
        for entry in os.scandir(self.root):
            info = entry.stat(follow_symlinks=False)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise UsageError(
                    f"{entry.path} is a link or a special file.",
                    "A vault's state holds only its own files: remove it, or use a new --state.",
                )
            _require_own(Path(entry.path), info)
        fd = os.open(self.root / "lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW, 0o600)
        lock = os.fdopen(fd, "ab")  # held open for the server's lifetime
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
        """Create a 0600 file exclusively; never overwrite, never through a link."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def secret(self, path: Path, make: bytes) -> bytes:
        """The secret stored at `path`, created from `make` on first use; it must be a file of
        this user's, not a link, readable by nobody else."""
        if not os.path.lexists(path):
            self.write_private(path, make)
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except OSError as exc:
            raise UsageError(
                f"{path} is a link or cannot be opened ({exc.strerror}).",
                "Remove it; the vault makes its own secrets.",
            ) from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            _require_own(path, info)
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"{path} is not a regular file.", "Remove it.")
            if info.st_mode & 0o077:
                raise UsageError(f"{path} is readable by other users.", f"Run: chmod 600 {path}")
            return handle.read()

    def token(self) -> str:
        """The bearer token clients must present (file `token`, 0600)."""
        return self.secret(self.token_path, secrets.token_urlsafe(32).encode()).decode().strip()

    def master_key(self) -> bytes:
        """The key that encrypts private material at rest (file `master.key`, 0600)."""
        key = self.secret(self.master_key_path, secrets.token_bytes(32))
        if len(key) != 32:
            raise UsageError(f"{self.master_key_path} is damaged.", "Restore it from a backup.")
        return key

    @property
    def mode_path(self) -> Path:
        return self.root / "mode"

    def publish_url(self, url: str, *, strict: bool = False) -> None:
        """Write the `mode` file (strict or rehearsal), then the `url` file atomically, so
        clients find the running vault and how it judges imports."""
        mode = STRICT if strict else REHEARSAL
        for path, text in ((self.mode_path, mode), (self.url_path, url)):
            temporary = path.with_suffix(".tmp")
            temporary.write_text(text + "\n")
            os.replace(temporary, path)

    def withdraw_url(self) -> None:
        self.url_path.unlink(missing_ok=True)
        self.mode_path.unlink(missing_ok=True)


_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _require_own(path: Path, info: os.stat_result) -> None:
    """Refuse what another user owns: it could have been planted, or read, by them."""
    if info.st_uid != os.geteuid():
        raise UsageError(
            f"{path} belongs to user id {info.st_uid}, not to the user running the vault "
            f"({os.geteuid()}).",
            "Use a state directory of your own (a new --state); never adopt another's.",
        )
