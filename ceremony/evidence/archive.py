"""evidence.archive: the deterministic tar that carries a sealed ceremony, and its strict reader.

Same files and time give the same bytes: sorted names, fixed mtime, uid/gid 0, no owner names,
mode 0644, USTAR. The reader refuses anything a writer of ours would not produce; never extracts.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path, PurePosixPath

from ceremony.errors import UsageError, VerificationError

_BLOCK = 512


def archive_bytes(files: dict[str, bytes], mtime: int) -> bytes:
    """The tar bytes for `files` (archive path -> content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_archive(files: dict[str, bytes], mtime: int, out: Path) -> bytes:
    """Write the archive create-exclusively (an existing archive is never replaced)."""
    data = archive_bytes(files, mtime)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as exc:
        raise UsageError(
            f"{out} exists already.", "An archive is never overwritten; move it away first."
        ) from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return data


def read_archive(path: Path) -> dict[str, bytes]:
    """Every member of an evidence archive. UsageError when it is no tar at all;
    VerificationError naming the member when it is damaged, truncated or has odd entries."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{path} does not exist.", "Give the archive or workspace path.") from exc
    except OSError as exc:
        raise UsageError(f"{path} cannot be read ({exc.strerror}).", "") from exc
    if len(raw) < _BLOCK or not _looks_like_tar(raw):
        raise UsageError(f"{path} is not a tar archive.", "Give the ceremony's archive.tar.")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                _check_member(member, files)
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                if len(data) != member.size:
                    raise tarfile.ReadError("unexpected end of data")
                files[member.name] = data
            end = tar.offset
    except tarfile.TarError as exc:
        raise VerificationError(
            f"{Path(path).name} is damaged or truncated after {len(files)} member(s) ({exc}).",
            "Use an intact copy of the archive.",
        ) from exc
    if raw[end : end + 2 * _BLOCK] != bytes(2 * _BLOCK):
        raise VerificationError(
            f"{Path(path).name} is truncated: the end-of-archive marker after "
            f"{len(files)} member(s) is missing.",
            "Use an intact copy of the archive.",
        )
    return files


def _looks_like_tar(raw: bytes) -> bool:
    return raw[257:262] == b"ustar" or raw[:_BLOCK] == bytes(_BLOCK)


def _check_member(member: tarfile.TarInfo, seen: dict[str, bytes]) -> None:
    name = member.name
    path = PurePosixPath(name)
    if not member.isreg():
        raise VerificationError(f"Archive member {name} is not a regular file.", "")
    if path.is_absolute() or ".." in path.parts or name != path.as_posix():
        raise VerificationError(f"Archive member name {name!r} is not a plain relative path.", "")
    if name in seen:
        raise VerificationError(f"Archive member {name} appears twice.", "")
    if seen and name < max(seen):
        raise VerificationError(f"Archive member {name} is out of order (members are sorted).", "")
