"""transcript: the append-only, hash-chained log of every ceremony step (JSON lines).

The file is the whole state, so the chain continues on whichever machine the workspace reaches.
Never records a PIN, password or private key: the API takes none; secret-looking data is refused.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from ceremony.canonical import canonical_json, sha256_hex
from ceremony.errors import RefusedError, UsageError, VerificationError
from ceremony.files import read_regular
from ceremony.fingerprint import Fingerprint
from ceremony.strictjson import strict_loads

GENESIS = "0" * 64
# Data larger than this is recorded by digest only; the file it came from carries the rest.
MAX_INLINE_DATA = 4096
_FIELDS = {"seq", "time", "host", "phase", "actor", "action", "data_sha256", "prev"}


@dataclass(frozen=True)
class Event:
    """One transcript line: who did what in which phase, linked to the line before it."""

    seq: int
    time: str
    host: str
    phase: str
    actor: str
    action: str
    data_sha256: str
    prev: str
    data: Any = None
    line_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as written to the line (without the line's own hash)."""
        record = {
            "seq": self.seq,
            "time": self.time,
            "host": self.host,
            "phase": self.phase,
            "actor": self.actor,
            "action": self.action,
            "data_sha256": self.data_sha256,
            "prev": self.prev,
        }
        if self.data is not None:
            record["data"] = self.data
        return record


class Transcript:
    """A transcript file. Appending checks the whole chain first: a bad log is never extended."""

    def __init__(self, path: Path | str, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or (lambda: datetime.now(UTC))

    def append(self, phase: str, actor: str, action: str, data: Any = None) -> Event:
        """Record one step. `data` must be JSON and public; large data is kept as its digest."""
        for name, value in (("phase", phase), ("actor", actor), ("action", action)):
            if not isinstance(value, str) or not value.strip():
                raise UsageError(f"Transcript {name} must be a non-empty string.", "")
        payload = canonical_json(data)
        self._refuse_secret(data)
        head, seq = self._tail()
        event = Event(
            seq=seq + 1,
            time=self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            host=socket.gethostname(),
            phase=phase,
            actor=actor,
            action=action,
            data_sha256=sha256_hex(payload),
            prev=head,
            data=data if data is not None and len(payload) <= MAX_INLINE_DATA else None,
        )
        line = canonical_json(event.to_dict())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o644)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return Event(**{**event.__dict__, "line_sha256": sha256_hex(line)})

    def head(self) -> str:
        """SHA-256 hex of the last line: the value witnesses read aloud after each phase."""
        return self._tail()[0]

    def head_fingerprint(self) -> Fingerprint:
        """The head as a Fingerprint, for words and a QR code."""
        return Fingerprint(bytes.fromhex(self.head()))

    def events(self) -> list[Event]:
        """All events, after checking the whole chain."""
        try:
            content = read_regular(self.path)
        except FileNotFoundError:
            content = b""
        return read_events(content, self.path.name)

    def verify(self, expected_head: str | None = None) -> str:
        """Check every line and link; return the head. Raises VerificationError naming the first
        bad line, or when the head differs from one written down earlier."""
        events = self.events()
        head = events[-1].line_sha256 if events else GENESIS
        if expected_head is not None and not Fingerprint.parse(expected_head).matches(head):
            raise VerificationError(
                f"{self.path.name}: the head is {head}, not the expected {expected_head}.",
                "Lines were added or removed after the head was recorded; find out who and why.",
            )
        return head

    def _tail(self) -> tuple[str, int]:
        """Head and last sequence number, from a full check: the file may have travelled."""
        events = self.events()
        return (events[-1].line_sha256, events[-1].seq) if events else (GENESIS, 0)

    @staticmethod
    def _refuse_secret(data: Any) -> None:
        from ceremony.evidence.secrets import json_value_has_secret

        reason = json_value_has_secret(data)
        if reason:
            raise RefusedError(
                f"Refusing to record transcript data: {reason}.",
                "Record only public values (fingerprints, identifiers); secrets stay in the HSM.",
            )


def read_events(content: bytes, name: str = "transcript.jsonl") -> list[Event]:
    """Parse and check a transcript's bytes; VerificationError names the first bad line."""
    events: list[Event] = []
    prev = GENESIS
    if content and not content.endswith(b"\n"):
        last = content.count(b"\n") + 1
        raise VerificationError(
            f"{name} line {last}: the line is incomplete (truncated or cut mid-write).",
            "Restore the transcript from the copy carried with the workspace.",
        )
    lines = content.split(b"\n")[:-1]
    for number, line in enumerate(lines, start=1):
        event = _parse_line(line, number, name)
        if event.seq != number:
            _bad(name, number, f"its sequence number is {event.seq}, not {number} (lines moved)")
        if event.prev != prev:
            # A line rewritten in another JSON layout breaks the next link: name the line itself.
            if number > 1:
                _require_canonical(lines[number - 2], number - 1, name)
            _bad(name, number, "it does not link to the line before it (edited, moved or removed)")
        prev = event.line_sha256
        events.append(event)
    if lines:
        # Every other line is pinned by the link after it; the last one by the recorded head.
        _require_canonical(lines[-1], len(lines), name)
    return events


def _require_canonical(line: bytes, number: int, name: str) -> None:
    if canonical_json(strict_loads(line)) != line:
        _bad(name, number, "it is not in canonical form (it was edited)")


def _parse_line(line: bytes, number: int, name: str) -> Event:
    try:
        record = strict_loads(line)
    except (ValueError, UnicodeDecodeError):
        _bad(name, number, "it is not JSON")
    if not isinstance(record, dict) or not _FIELDS <= set(record) <= _FIELDS | {"data"}:
        _bad(name, number, "its fields are not those of a transcript event")
    if "data" in record and sha256_hex(canonical_json(record["data"])) != record["data_sha256"]:
        _bad(name, number, "its data does not match its data_sha256 (edited)")
    return Event(**record, line_sha256=sha256_hex(line))


def _bad(name: str, number: int, why: str) -> NoReturn:
    raise VerificationError(
        f"{name} line {number}: {why}.",
        "The transcript is not the one the ceremony wrote; compare it with the recorded head.",
    )
