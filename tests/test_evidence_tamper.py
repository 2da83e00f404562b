"""Tampering with sealed evidence: every change must fail verification, naming what is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

from ceremony.evidence.verify import verify_path
from tests.fixtures_evidence import SealedCeremony, assert_no_secrets, members, rewrite_archive

ENVELOPE = "evidence/statement.dsse.json"


def _verify_bytes(tmp_path: Path, data: bytes, sealed: SealedCeremony):
    path = tmp_path / "archive.tar"
    path.write_bytes(data)
    if len(data) > 1024:
        assert_no_secrets(path, sealed.known_secrets)
    return verify_path(path)


def _first(report) -> tuple[str, str]:
    bad = report.failed[0]
    return bad.subject, bad.detail


def test_flip_one_byte_in_each_member(sealed_ceremony: SealedCeremony, tmp_path: Path) -> None:
    original = sealed_ceremony.result.archive_path.read_bytes()
    for member in members(original):
        data = bytearray(original)
        data[member.offset_data + member.size // 2] ^= 0x01
        report = _verify_bytes(tmp_path, bytes(data), sealed_ceremony)
        assert not report.verified, member.name
        subject, detail = _first(report)
        assert subject == member.name, (member.name, subject, detail)


def test_flip_one_byte_in_each_workspace_file(
    sealed_ceremony: SealedCeremony, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(sealed_ceremony.root, workspace)
    (workspace / "archive.tar").unlink()
    assert verify_path(workspace).verified
    files = [p for p in sorted(workspace.rglob("*")) if p.is_file() and ".ipynb_" not in str(p)]
    assert len(files) > 20
    for path in files:
        original = path.read_bytes()
        data = bytearray(original)
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        report = verify_path(workspace)
        path.write_bytes(original)
        name = path.relative_to(workspace).as_posix()
        assert not report.verified, name
        assert _first(report)[0] == name


def test_drop_a_file(sealed_ceremony: SealedCeremony, tmp_path: Path) -> None:
    original = sealed_ceremony.result.archive_path.read_bytes()
    report = _verify_bytes(
        tmp_path, rewrite_archive(original, {"keys/app-ec.byok": None}), sealed_ceremony
    )
    assert _first(report) == ("keys/app-ec.byok", "listed in the statement but missing")


def test_add_a_file(sealed_ceremony: SealedCeremony, tmp_path: Path) -> None:
    original = sealed_ceremony.result.archive_path.read_bytes()
    tampered = rewrite_archive(original, {"keys/extra.txt": b"added later\n"})
    report = _verify_bytes(tmp_path, tampered, sealed_ceremony)
    assert _first(report) == ("keys/extra.txt", "not covered by the signed statement (added)")


def test_reorder_transcript_lines(sealed_ceremony: SealedCeremony, tmp_path: Path) -> None:
    original = sealed_ceremony.result.archive_path.read_bytes()
    lines = (sealed_ceremony.root / "transcript.jsonl").read_bytes().splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]
    tampered = rewrite_archive(original, {"transcript.jsonl": b"".join(lines)})
    report = _verify_bytes(tmp_path, tampered, sealed_ceremony)
    assert _first(report)[0] == "transcript.jsonl"
    details = [c.detail for c in report.failed if c.subject == "transcript.jsonl"]
    assert any("line 3" in d for d in details), details


def _envelope(sealed: SealedCeremony) -> dict:
    return json.loads((sealed.root / ENVELOPE).read_bytes())


def _with_envelope(sealed: SealedCeremony, envelope: dict) -> bytes:
    original = sealed.result.archive_path.read_bytes()
    canonical = json.dumps(envelope, indent=2, sort_keys=True) + "\n"
    return rewrite_archive(original, {ENVELOPE: canonical.encode()})


def test_remove_a_signature_breaks_the_quorum(
    sealed_ceremony: SealedCeremony, tmp_path: Path
) -> None:
    bob = next(p for p in sealed_ceremony.people if p.name == "bob")
    envelope = _envelope(sealed_ceremony)
    envelope["signatures"] = [s for s in envelope["signatures"] if s["keyid"] != bob.key_id]
    report = _verify_bytes(tmp_path, _with_envelope(sealed_ceremony, envelope), sealed_ceremony)
    subject, detail = _first(report)
    assert subject == "2 custodians and 1 witness"
    assert detail == "quorum not met: missing 1 custodian"


def test_remove_a_signature_beyond_the_quorum_still_verifies(
    sealed_ceremony: SealedCeremony, tmp_path: Path
) -> None:
    ada = next(p for p in sealed_ceremony.people if p.name == "ada")
    envelope = _envelope(sealed_ceremony)
    envelope["signatures"] = [s for s in envelope["signatures"] if s["keyid"] != ada.key_id]
    report = _verify_bytes(tmp_path, _with_envelope(sealed_ceremony, envelope), sealed_ceremony)
    assert report.verified and "ada" not in report.signed_by


def test_signature_from_a_key_not_in_the_plan(
    sealed_ceremony: SealedCeremony, tmp_path: Path
) -> None:
    envelope = Envelope.from_dict(_envelope(sealed_ceremony))
    stranger = CryptoSigner(ec.generate_private_key(ec.SECP256R1()))
    envelope.sign(stranger)
    report = _verify_bytes(
        tmp_path, _with_envelope(sealed_ceremony, envelope.to_dict()), sealed_ceremony
    )
    subject, detail = _first(report)
    assert subject == ENVELOPE
    assert detail.startswith(f"signature by key {stranger.public_key.keyid[:16]}")
    assert "of nobody in the statement" in detail


def test_replace_a_signer_public_key(sealed_ceremony: SealedCeremony, tmp_path: Path) -> None:
    other = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    original = sealed_ceremony.result.archive_path.read_bytes()
    tampered = rewrite_archive(original, {"evidence/signers/bob.pub.pem": other})
    report = _verify_bytes(tmp_path, tampered, sealed_ceremony)
    assert _first(report) == (
        "evidence/signers/bob.pub.pem",
        "not the public key bob signed with",
    )


def test_replace_a_target_public_key(sealed_ceremony: SealedCeremony, tmp_path: Path) -> None:
    other = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    original = sealed_ceremony.result.archive_path.read_bytes()
    tampered = rewrite_archive(original, {"keys/app-ec.pub.pem": other})
    report = _verify_bytes(tmp_path, tampered, sealed_ceremony)
    assert _first(report)[0] == "keys/app-ec.pub.pem"
    later = [c.subject for c in report.failed]
    assert "keys/app-ec.import.json" in later  # the vault's key no longer matches either


def test_untrusted_signer_keys(sealed_ceremony: SealedCeremony) -> None:
    trusted = [p.public_key_pem for p in sealed_ceremony.people if p.name != "wendy"]
    report = verify_path(sealed_ceremony.result.archive_path, trusted_keys=trusted)
    assert not report.verified
    assert "wendy's key" in report.first_failure
    all_keys = [p.public_key_pem for p in sealed_ceremony.people]
    assert verify_path(sealed_ceremony.result.archive_path, trusted_keys=all_keys).verified


@pytest.mark.parametrize("where", ["member-boundary", "mid-member", "end-marker"])
def test_truncated_archive(sealed_ceremony: SealedCeremony, tmp_path: Path, where: str) -> None:
    original = sealed_ceremony.result.archive_path.read_bytes()
    listing = members(original)
    last = listing[-1]
    cut = {
        "member-boundary": listing[5].offset,
        "mid-member": listing[5].offset_data + 10,
        "end-marker": last.offset_data + ((last.size + 511) // 512) * 512 + 100,
    }[where]
    report = _verify_bytes(tmp_path, original[:cut], sealed_ceremony)
    assert not report.verified
    subject, detail = _first(report)
    assert subject == "archive.tar"
    assert "truncated" in detail


def test_reordered_members_are_named(sealed_ceremony: SealedCeremony, tmp_path: Path) -> None:
    import io
    import tarfile

    original = sealed_ceremony.result.archive_path.read_bytes()
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(original)) as source,
        tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for member in reversed(source.getmembers()):
            tar.addfile(member, source.extractfile(member))
    report = _verify_bytes(tmp_path, out.getvalue(), sealed_ceremony)
    assert _first(report)[0] == "archive.tar" and "out of order" in _first(report)[1]


def test_a_changed_byte_in_padding_or_after_the_end_marker_is_detected(tmp_path) -> None:
    """The archive is canonical: even bytes no member owns must be exactly as sealed."""
    from ceremony.errors import VerificationError
    from ceremony.evidence.archive import archive_bytes, parse_archive

    raw = archive_bytes({"a.txt": b"abc", "b.txt": b"defg"}, 1_700_000_000)
    assert parse_archive(raw, "ok.tar") == {"a.txt": b"abc", "b.txt": b"defg"}
    in_padding = bytearray(raw)
    in_padding[512 + 3] = 0x41  # right after a.txt's three bytes, inside its block padding
    with pytest.raises(VerificationError, match=r"padding after member a\.txt"):
        parse_archive(bytes(in_padding), "padded.tar")
    after_end = bytearray(raw)
    after_end[-1] = 0x01
    with pytest.raises(VerificationError, match="after the end-of-archive marker"):
        parse_archive(bytes(after_end), "tail.tar")
