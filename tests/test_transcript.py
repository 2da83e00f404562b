"""Transcript: chain rechecked with hashlib and json, tampering named by line, secrets refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ceremony.errors import RefusedError, UsageError, VerificationError
from ceremony.transcript import GENESIS, MAX_INLINE_DATA, Transcript

T0 = datetime(2026, 11, 28, 9, 30, 15, tzinfo=UTC)


def _filled(path: Path, events: int = 5) -> Transcript:
    transcript = Transcript(path, clock=lambda: T0)
    for n in range(events):
        transcript.append(f"0{n}-phase", "administrator", f"step {n}", {"n": n, "ok": True})
    return transcript


def test_chain_recomputed_independently(tmp_path: Path) -> None:
    transcript = _filled(tmp_path / "t.jsonl")
    lines = (tmp_path / "t.jsonl").read_bytes().splitlines()
    prev = "0" * 64
    for number, line in enumerate(lines, start=1):
        record = json.loads(line)
        assert record["seq"] == number and record["prev"] == prev
        assert record["time"] == "2026-11-28T09:30:15Z"
        data = json.dumps(record["data"], sort_keys=True, separators=(",", ":")).encode()
        assert record["data_sha256"] == hashlib.sha256(data).hexdigest()
        prev = hashlib.sha256(line).hexdigest()
    assert transcript.head() == prev == transcript.verify()
    assert transcript.head_fingerprint().hex == prev
    assert [e.action for e in transcript.events()] == [f"step {n}" for n in range(5)]


def test_empty_transcript_head_is_genesis(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "none.jsonl")
    assert transcript.head() == GENESIS == transcript.verify()
    assert transcript.events() == []


def test_continues_across_machines(tmp_path: Path) -> None:
    # The workspace is carried across the air gap: a new object (new process) on a copy continues.
    online = _filled(tmp_path / "online" / "t.jsonl", 2)
    head = online.head()
    shutil.copytree(tmp_path / "online", tmp_path / "offline")
    offline = Transcript(tmp_path / "offline" / "t.jsonl")
    event = offline.append("02-generate", "custodian", "generated key", {"label": "k1"})
    assert event.prev == head and event.seq == 3
    assert offline.verify() == event.line_sha256


def test_large_data_kept_as_digest(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "t.jsonl")
    big = {"blob": "x" * (MAX_INLINE_DATA + 10)}
    event = transcript.append("03-wrap", "custodian", "wrapped", big)
    assert event.data is None
    canonical = json.dumps(big, sort_keys=True, separators=(",", ":")).encode()
    assert event.data_sha256 == hashlib.sha256(canonical).hexdigest()
    assert "data" not in json.loads((tmp_path / "t.jsonl").read_text())


@pytest.mark.parametrize(
    ("edit", "line", "why"),
    [
        (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 2, "sequence number"),
        (lambda lines: [lines[0], *lines[2:]], 2, "sequence number"),
        (lambda lines: [*lines[:3], lines[3].replace(b'"ok":true', b'"ok":false'), lines[4]], 4,
         "data does not match"),
        (lambda lines: [*lines[:2], lines[2].replace(b"step 2", b"step X"), *lines[3:]], 4,
         "does not link"),
        (lambda lines: [*lines[:1], lines[1].replace(b",", b", ", 1), *lines[2:]], 2,
         "canonical"),
        (lambda lines: [*lines[:4], b"not json"], 5, "not JSON"),
    ],
    ids=["reordered", "removed", "data-edited", "action-edited", "reformatted", "garbage"],
)  # fmt: skip
def test_tampering_names_the_line(tmp_path: Path, edit, line: int, why: str) -> None:
    path = tmp_path / "t.jsonl"
    _filled(path)
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join(edit(lines)) + b"\n")
    with pytest.raises(VerificationError, match=f"line {line}: .*{why}"):
        Transcript(path).verify()


def test_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    _filled(path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(VerificationError, match="line 5: the line is incomplete"):
        Transcript(path).verify()


def test_damaged_transcript_is_never_extended(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    transcript = _filled(path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[1], lines[0], *lines[2:]]))
    before = path.read_bytes()
    with pytest.raises(VerificationError):
        transcript.append("x", "y", "z")
    assert path.read_bytes() == before


def test_expected_head(tmp_path: Path) -> None:
    transcript = _filled(tmp_path / "t.jsonl", 2)
    head = transcript.head_fingerprint()
    assert transcript.verify(expected_head=head.words) == head.hex
    transcript.append("05", "administrator", "later")
    with pytest.raises(VerificationError, match="not the expected"):
        transcript.verify(expected_head=head.short)


@pytest.mark.parametrize(
    "data",
    [
        {"pin": "1234"},
        {"token": {"so_pin": "x"}},
        {"items": [{"password": "p"}]},
        {"note": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"},
    ],
)
def test_secret_looking_data_is_refused(tmp_path: Path, data) -> None:
    transcript = Transcript(tmp_path / "t.jsonl")
    with pytest.raises(RefusedError, match="Refusing to record"):
        transcript.append("00", "administrator", "oops", data)
    assert not (tmp_path / "t.jsonl").exists()


def test_bad_arguments(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "t.jsonl")
    with pytest.raises(UsageError):
        transcript.append("", "administrator", "x")
    with pytest.raises(UsageError, match="cannot be recorded as JSON"):
        transcript.append("00", "administrator", "x", {"raw": b"bytes"})
    with pytest.raises(UsageError, match="cannot be recorded as JSON"):
        transcript.append("00", "administrator", "x", {"n": float("nan")})
