"""evidence.archive: the deterministic tar that carries a sealed ceremony, and its strict reader.

Same files and time give the same bytes: sorted names, fixed mtime, uid/gid 0, no owner names,
mode 0644, USTAR. The reader refuses anything a writer of ours would not produce; never extracts.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

from ceremony.errors import UsageError, VerificationError
from ceremony.files import write_new

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_MAX_NAME = 255
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,100}")
_OCTAL_FIELD = re.compile(rb"([0-7]+)[\x00 ]+")
_NUMERIC_FIELDS = (
    (slice(100, 108), "mode"),
    (slice(108, 116), "uid"),
    (slice(116, 124), "gid"),
    (slice(124, 136), "size"),
    (slice(136, 148), "mtime"),
)


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
    write_new(out, data, remedy="An archive is never overwritten; move the old one away first.")
    return data


def read_archive(path: Path) -> dict[str, bytes]:
    """Every member of an evidence archive. UsageError when it is no tar at all;
    VerificationError naming the member when it is damaged, truncated or has odd entries.

    Reads USTAR headers directly (checksum, name, size, type) rather than through tarfile: it is
    stricter (regular files only, sorted, no duplicates, end marker required) and several times
    faster, which matters when an auditor verifies many archives."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{path} does not exist.", "Give the archive or workspace path.") from exc
    except OSError as exc:
        raise UsageError(f"{path} cannot be read ({exc.strerror}).", "") from exc
    return parse_archive(raw, Path(path).name)


def parse_archive(raw: bytes, label: str) -> dict[str, bytes]:
    """read_archive for bytes already in memory; `label` names the archive in messages.

    After reading every member strictly, the archive must be byte for byte the one
    archive_bytes() makes of those members: so no header field (mode, owner, time, link name,
    bytes hidden after a name's NUL) can say anything `tar` would act on that this reader did
    not see."""
    if len(raw) < _BLOCK or raw[257:263] != b"ustar\x00":
        raise UsageError(f"{label} is not a tar archive.", "Give the ceremony's archive.tar.")
    files: dict[str, bytes] = {}
    starts: list[tuple[int, str]] = []
    offset, last = 0, ""
    view = memoryview(raw)
    while True:
        header = raw[offset : offset + _BLOCK]
        if len(header) < _BLOCK:
            raise _damaged(label, files, "truncated: the end-of-archive marker is missing")
        if header == _ZERO_BLOCK:
            if raw[offset + _BLOCK : offset + 2 * _BLOCK] != _ZERO_BLOCK:
                raise _damaged(label, files, "truncated: the end-of-archive marker is incomplete")
            if not _all_zero(view[offset:]):
                raise _damaged(label, files, "bytes after the end-of-archive marker are not zero")
            _require_canonical(raw, files, starts, label)
            return files
        name, size = _parse_header(header, label, files)
        if name in files:
            raise VerificationError(f"Archive member {name} appears twice.", "")
        if name < last:
            raise VerificationError(
                f"{label}: member {name} is out of order (members are sorted).", ""
            )
        start = offset + _BLOCK
        if start + size > len(raw):
            raise _damaged(label, files, f"truncated inside member {name}")
        files[name] = bytes(view[start : start + size])
        starts.append((offset, name))
        last = name
        offset = start + (size + _BLOCK - 1) // _BLOCK * _BLOCK
        if not _all_zero(view[start + size : offset]):
            raise _damaged(label, files, f"the padding after member {name} is not zero")


def archive_mtime(raw: bytes) -> int:
    """The members' modification time (all equal in a canonical archive; 0 when it is empty)."""
    return 0 if raw[:_BLOCK] == _ZERO_BLOCK else _number(raw[136:148], "mtime")


def is_safe_member_name(name: str) -> bool:
    """Whether `name` is a plain relative path of letters, digits, '.', '_' and '-' segments."""
    return len(name) <= _MAX_NAME and all(
        _SAFE_SEGMENT.fullmatch(part) and part not in (".", "..") for part in name.split("/")
    )


def _require_canonical(
    raw: bytes, files: dict[str, bytes], starts: list[tuple[int, str]], label: str
) -> None:
    canonical = archive_bytes(files, archive_mtime(raw))
    if canonical == raw:
        return
    # The first differing byte; when one is a prefix of the other, where the shorter one ends.
    shorter = min(len(raw), len(canonical))
    where = next(
        (i for i, (a, b) in enumerate(zip(raw, canonical, strict=False)) if a != b), shorter
    )
    member = next((name for start, name in reversed(starts) if start <= where), None)
    raise VerificationError(
        f"{label}: member {member or '(end)'} is not as the ceremony writes it (a header field "
        "such as mode, owner, time or link name, or the archive's length, differs from the "
        "canonical archive).",
        "Use the archive exactly as it was sealed.",
    )


def _all_zero(data: memoryview) -> bool:
    """True when every byte is zero: the archive is canonical, so no byte may carry anything."""
    return data == bytes(len(data))


def _parse_header(header: bytes, label: str, files: dict[str, bytes]) -> tuple[str, int]:
    try:
        stored = _number(header[148:156], "checksum")
        for field, what in _NUMERIC_FIELDS:
            _number(header[field], what)
    except ValueError as exc:
        raise _damaged(label, files, f"a member header is corrupt ({exc})") from None
    computed = sum(header[:148]) + 8 * 0x20 + sum(header[156:])
    if stored != computed or header[257:263] != b"ustar\x00":
        raise _damaged(label, files, "a member header is corrupt (checksum or magic)")
    raw_name = header[0:100].split(b"\x00", 1)[0]
    prefix = header[345:500].split(b"\x00", 1)[0]
    name = (prefix + b"/" + raw_name if prefix else raw_name).decode("latin-1")
    if not is_safe_member_name(name):
        raise VerificationError(
            f"Archive member name {name!r} is outside the safe set (letters, digits, '.', '_', "
            "'-' and '/' between plain segments).",
            "Use the archive exactly as it was sealed.",
        )
    if header[156:157] != b"0":
        raise VerificationError(f"Archive member {name} is not a regular file.", "")
    return name, _number(header[124:136], "size")


def _number(field: bytes, what: str) -> int:
    """A numeric header field as tarfile writes it: octal digits, then NUL or spaces. Anything
    else (base-256, a leading NUL or space, stray bytes) is read differently by different tars."""
    match = _OCTAL_FIELD.fullmatch(field)
    if match is None:
        raise ValueError(f"its {what} field is not plain octal")
    return int(match.group(1), 8)


def _damaged(label: str, files: dict[str, bytes], why: str) -> VerificationError:
    return VerificationError(
        f"{label} is damaged after {len(files)} member(s): {why}.",
        "Use an intact copy of the archive.",
    )
