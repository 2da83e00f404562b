"""files: how every ceremony output reaches the disk — whole, durable, and never over another file.

A reader sees either no file or the complete file; an existing output is refused, never replaced.
Inside a workspace (`write_new_in`) no path component may be a link: the medium may be hostile.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ceremony.errors import RefusedError

KEEP_EXISTING = "Move it aside or choose another name; a ceremony never overwrites an output."
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def refuse_existing(*paths: Path, remedy: str = KEEP_EXISTING) -> None:
    """Refuse before anything irreversible happens when an output is already there."""
    for path in paths:
        if Path(path).exists():
            raise RefusedError(f"{path} already exists.", remedy)


def partial_name(name: str) -> str:
    """The temporary name a file is written under before it appears whole under `name`."""
    return f".{name}.part"


def write_new(path: Path, data: bytes, *, mode: int = 0o644, remedy: str = KEEP_EXISTING) -> Path:
    """Write `data` to `path`, which must not exist: a synced temporary file hard-linked into place,
    so the write is atomic and create-exclusive even against a concurrent writer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_existing(path, remedy=remedy)
    with _opened(os.open(path.parent, _DIRECTORY)) as folder:
        _write_at(folder, path.name, partial_name(path.name), data, mode, str(path), remedy)
    return path


def read_regular(path: Path) -> bytes:
    """The bytes of PATH, which must be a regular file and not a link (FileNotFoundError when it
    does not exist): a link planted on the medium could point at a device that never ends."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise RefusedError(
            f"{path} is a link or cannot be opened ({exc.strerror}).",
            "Remove what was planted there; the workspace holds only real files.",
        ) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise RefusedError(
                f"{path} is not a regular file.",
                "Remove what was planted there; the workspace holds only real files.",
            )
        return handle.read()


def write_new_in(
    root: Path, relative: str, data: bytes, *, mode: int = 0o644, remedy: str = KEEP_EXISTING
) -> Path:
    """Write `data` to ROOT/RELATIVE like `write_new`, following no link on the way: every folder
    below ROOT is opened with O_NOFOLLOW (made when missing), and so is the file.

    The temporary file has a fixed name (`partial_name`), so whoever finds one after a crash
    knows exactly which output it was meant to become."""
    parts = _parts(relative)
    folder = os.open(root, _DIRECTORY)
    for part in parts[:-1]:
        folder = _enter(folder, part, root, relative)
    with _opened(folder):
        _write_at(folder, parts[-1], partial_name(parts[-1]), data, mode, relative, remedy)
    return root.joinpath(*parts)


def _parts(relative: str) -> tuple[str, ...]:
    parts = PurePosixPath(relative).parts
    if (
        not parts
        or any(p in ("", ".", "..") or "/" in p for p in parts)
        or relative.startswith("/")
    ):
        raise RefusedError(f"{relative!r} is not a plain relative path.", "This is a bug.")
    return parts


def _enter(folder: int, part: str, root: Path, relative: str) -> int:
    """Open (making it if needed) the subfolder PART of FOLDER, refusing a link; closes FOLDER."""
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o700, dir_fd=folder)
        return os.open(part, _DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
    except OSError as exc:
        raise RefusedError(
            f"Cannot write {relative} in {root}: {part!r} on its way is a link or not a folder.",
            "Remove what was planted there; the workspace holds only real folders and files.",
        ) from exc
    finally:
        os.close(folder)


def _write_at(
    folder: int, name: str, temporary: str, data: bytes, mode: int, shown: str, remedy: str
) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, mode, dir_fd=folder)
    except FileExistsError:
        raise RefusedError(
            f"The temporary file for {shown} exists already (another writer, or a crash).",
            "Rerun: the workspace check removes what a crashed write left behind.",
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        except FileExistsError:
            raise RefusedError(f"{shown} already exists.", remedy) from None
    finally:
        os.unlink(temporary, dir_fd=folder)
    os.fsync(folder)


@contextlib.contextmanager
def _opened(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)
