"""Hostile archives: each is built here and must be refused, read as `tar` and every JSON parser
would read it, with one sentence and no traceback; nothing from the archive reaches the terminal
unescaped."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from securesystemslib.dsse import Envelope

from ceremony.evidence.verify import Check, VerifyReport, verify_path
from ceremony.signers import load_signer
from ceremony.terminal import escape
from tests.evidence_workspace import CEREMONY_TIME
from tests.fixtures_evidence import SealedCeremony, rewrite_archive

ENVELOPE = "evidence/statement.dsse.json"
BLOCK = 512


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ceremony", *args], capture_output=True, text=True, check=False
    )


def _header_offset(raw: bytes, name: str) -> int:
    offset = 0
    while raw[offset : offset + BLOCK] != bytes(BLOCK):
        size = int(raw[offset + 124 : offset + 135], 8)
        if raw[offset : offset + 100].rstrip(b"\0").decode() == name:
            return offset
        offset += BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK
    raise KeyError(name)


def _patch_header(raw: bytes, name: str, start: int, value: bytes) -> bytes:
    """Overwrite header bytes of member `name` and fix its checksum, as a forger would."""
    data = bytearray(raw)
    at = _header_offset(raw, name)
    data[at + start : at + start + len(value)] = value
    header = data[at : at + BLOCK]
    header[148:156] = b" " * 8
    data[at + 148 : at + 156] = b"%06o\0 " % sum(header)
    return bytes(data)


def _tar(files: dict[str, bytes], **fields) -> bytes:
    """A tar made by tarfile with the given TarInfo fields on every member."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(files[name]), int(CEREMONY_TIME.timestamp())
            for key, value in fields.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


def _members(raw: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def _refused(tmp_path: Path, raw: bytes, expected: str) -> str:
    path = tmp_path / "hostile.tar"
    path.write_bytes(raw)
    report = verify_path(path)
    assert not report.verified
    assert expected in (report.first_failure or ""), report.first_failure
    done = _cli("verify", str(path))
    assert done.returncode in (1, 2) and "Traceback" not in done.stdout + done.stderr
    return report.first_failure or ""


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ({"mode": 0o6777}, "setuid, world-writable"),
        ({"uname": "root", "gname": "root"}, "owner names"),
        ({"uid": 1000}, "an owner id"),
        ({"mtime": 0}, "not dated at the sealed time"),
        ({"linkname": "/etc/shadow"}, "a link name on a regular file"),
    ],
)
def test_header_fields_tar_would_obey_are_refused(
    sealed_ceremony: SealedCeremony, tmp_path: Path, fields: dict, what: str
) -> None:
    raw = _tar(_members(sealed_ceremony.result.archive_path.read_bytes()), **fields)
    expected = what if what.startswith("not dated") else "is not as the ceremony writes it"
    _refused(tmp_path, raw, expected)


def test_bytes_hidden_after_the_nul_of_a_name_are_refused(
    sealed_ceremony: SealedCeremony, tmp_path: Path
) -> None:
    raw = sealed_ceremony.result.archive_path.read_bytes()
    hidden = _patch_header(raw, "kek.json", len("kek.json") + 1, b"hidden")
    _refused(tmp_path, hidden, "member kek.json is not as the ceremony writes it")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base-256 size", b"\x80" + bytes(11)),
        ("leading NUL in size", b"\x00" + b"0000000012\x00"),
        ("leading space in mode", b" 000644\x00"),
    ],
)
def test_numeric_fields_other_tars_read_differently_are_refused(
    sealed_ceremony: SealedCeremony, tmp_path: Path, field: str, value: bytes
) -> None:
    raw = sealed_ceremony.result.archive_path.read_bytes()
    start = 100 if "mode" in field else 124
    _refused(tmp_path, _patch_header(raw, "kek.json", start, value), "is not plain octal")


@pytest.mark.parametrize(
    "name",
    ["evidence/\x1b[2Kok.txt", "keys/a\rVERIFIED", "../escape.txt", "dir/./x", "caf\xe9.txt"],
)
def test_member_names_outside_the_safe_set_are_refused(tmp_path: Path, name: str) -> None:
    raw = _tar({name: b"x"})
    path = tmp_path / "names.tar"
    path.write_bytes(raw)
    report = verify_path(path)
    assert not report.verified and "outside the safe set" in report.first_failure
    done = _cli("verify", str(path))
    assert done.returncode == 1 and "\x1b" not in done.stdout and "\r" not in done.stdout


def test_the_table_escapes_what_the_archive_says() -> None:
    report = VerifyReport("x.tar")
    report.checks.append(Check("digest", "a\x1b[1A\x1b[2Kb", False, "c\rok\u202e"))
    table = report.table()
    assert "\x1b" not in table and "\r" not in table and "\u202e" not in table
    assert "a\\x1b[1A\\x1b[2Kb" in table and escape("plain text") == "plain text"


def _envelope_dict(sealed: SealedCeremony) -> dict:
    return json.loads((sealed.root / ENVELOPE).read_bytes())


def test_an_envelope_with_a_duplicated_payload_is_refused(
    sealed_ceremony: SealedCeremony, tmp_path: Path
) -> None:
    envelope = _envelope_dict(sealed_ceremony)
    unsigned = base64.b64encode(b'{"_type": "forged"}').decode()
    text = json.dumps(envelope, indent=2, sort_keys=True)
    doubled = text.replace('"payload":', f'"payload": "{unsigned}",\n  "payload":', 1)
    raw = rewrite_archive(sealed_ceremony.result.archive_path.read_bytes(),
                          {ENVELOPE: (doubled + "\n").encode()})  # fmt: skip
    _refused(tmp_path, raw, "appears twice")


def test_an_envelope_with_extra_fields_is_refused(
    sealed_ceremony: SealedCeremony, tmp_path: Path
) -> None:
    envelope = {**_envelope_dict(sealed_ceremony), "note": "unsigned words"}
    text = json.dumps(envelope, indent=2, sort_keys=True) + "\n"
    raw = rewrite_archive(sealed_ceremony.result.archive_path.read_bytes(),
                          {ENVELOPE: text.encode()})  # fmt: skip
    _refused(tmp_path, raw, "not in the canonical form")


def _resigned(sealed: SealedCeremony, change) -> bytes:
    """The archive with its statement changed by `change` and signed again by the real people:
    the predicate is hostile although every signature is valid."""
    envelope = Envelope.from_dict(_envelope_dict(sealed))
    statement = json.loads(envelope.payload)
    change(statement["predicate"])
    payload = (json.dumps(statement, indent=2, sort_keys=True) + "\n").encode()
    signed = Envelope(payload, envelope.payload_type, {})
    for person in sealed.people:
        if person.signer:
            signed.sign(load_signer(person))
    text = json.dumps(signed.to_dict(), indent=2, sort_keys=True) + "\n"
    original = sealed.result.archive_path.read_bytes()
    return rewrite_archive(original, {ENVELOPE: text.encode(), "evidence/statement.json": payload})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(sealed_at="yesterday"), "sealed_at is not a time"),
        (lambda p: p.update(sealed_at=12), "sealed_at is not a time"),
        (lambda p: p.update(quorum="everyone"), "quorum is not an object"),
        (lambda p: p.update(transcript="abc"), "transcript is not an object"),
        (lambda p: p.update(people={"a": 1}), "people is not a list"),
        (lambda p: p.update(exceptions=[1]), "exceptions is not a list of sentences"),
        (lambda p: p.update(rehearsal="no"), "rehearsal is not true or false"),
    ],
)
def test_a_structurally_wrong_predicate_is_one_sentence(
    sealed_ceremony: SealedCeremony, tmp_path: Path, change, message: str
) -> None:
    failure = _refused(tmp_path, _resigned(sealed_ceremony, change), message)
    assert failure.startswith(f"{ENVELOPE}: the predicate's ") and "\n" not in failure


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "member", ["kek.json", "keys/app-ec.import.json", ENVELOPE, "transcript.jsonl"]
)
def test_json_nested_100000_deep_is_refused(
    sealed_ceremony: SealedCeremony, tmp_path: Path, member: str
) -> None:
    content = DEEP + (b"\n" if member.endswith(".jsonl") else b"")
    raw = rewrite_archive(sealed_ceremony.result.archive_path.read_bytes(), {member: content})
    path = tmp_path / "deep.tar"
    path.write_bytes(raw)
    report = verify_path(path)
    assert not report.verified
    details = " ".join(c.detail for c in report.failed)
    assert member == ENVELOPE or "nests deeper than" in details or "not JSON" in details, details
    done = _cli("verify", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "RecursionError" not in done.stdout + done.stderr
