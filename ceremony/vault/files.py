"""vault.files: outputs of the vault commands, written whole and never over an existing file.

Create-exclusive and atomic: a reader sees no file or the complete file, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ceremony.errors import RefusedError, UsageError


def refuse_existing(*paths: Path) -> None:
    """Refuse before doing anything irreversible when an output is already there."""
    for path in paths:
        if path.exists():
            raise RefusedError(
                f"{path} already exists; the ceremony never overwrites an output.",
                "Move it aside or choose another output name.",
            )


def write_new(path: Path, data: bytes) -> None:
    """Write `data` to `path`, which must not exist; atomic through a hard link."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"Directory {path.parent} does not exist.", "Create it first.")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            refuse_existing(path)
            raise
    finally:
        os.unlink(tmp)
