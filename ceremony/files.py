"""files: how every ceremony output reaches the disk — whole, durable, and never over another file.

A reader sees either no file or the complete file; an existing output is refused, never replaced.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ceremony.errors import RefusedError

KEEP_EXISTING = "Move it aside or choose another name; a ceremony never overwrites an output."


def refuse_existing(*paths: Path, remedy: str = KEEP_EXISTING) -> None:
    """Refuse before anything irreversible happens when an output is already there."""
    for path in paths:
        if Path(path).exists():
            raise RefusedError(f"{path} already exists.", remedy)


def write_new(path: Path, data: bytes, *, mode: int = 0o644, remedy: str = KEEP_EXISTING) -> Path:
    """Write `data` to `path`, which must not exist: a synced temporary file hard-linked into place,
    so the write is atomic and create-exclusive even against a concurrent writer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_existing(path, remedy=remedy)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise RefusedError(f"{path} appeared while it was being written.", remedy) from None
    finally:
        os.unlink(tmp)
    return path
