"""Sealing and verifying evidence: archive shape, DSSE via securesystemslib alone, refusals, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from ceremony.errors import RefusedError, UsageError
from ceremony.evidence import build_evidence, verify_path
from ceremony.evidence.records import ImportRecord, KekRecord
from ceremony.signers import load_signer
from tests.evidence_workspace import CEREMONY_TIME, enrol, make_people, make_workspace
from tests.fixtures_evidence import SealedCeremony, assert_no_secrets, openssl_spki_sha256


def test_sealed_archive_verifies(sealed_ceremony: SealedCeremony) -> None:
    result = sealed_ceremony.result
    assert result.verification.verified, result.verification.first_failure
    assert set(result.signed_by) == {"alice", "bob", "wendy", "ada"}
    digest = hashlib.sha256(result.archive_path.read_bytes()).hexdigest()
    assert result.archive_sha256 == digest == result.fingerprint.hex
    assert verify_path(sealed_ceremony.root).verified
    checks = {c.check for c in result.verification.checks}
    assert checks >= {"archive", "envelope", "signature", "quorum", "signer-key", "digest",
                      "manifest", "transcript", "kek", "key", "byok", "import"}  # fmt: skip


def test_archive_is_deterministic_and_plain(sealed_ceremony: SealedCeremony, tmp_path) -> None:
    archive = sealed_ceremony.result.archive_path
    with tarfile.open(archive) as tar:
        listing = tar.getmembers()
    names = [m.name for m in listing]
    assert names == sorted(names)
    assert "archive.tar" not in names and not any("/." in n or n.startswith(".") for n in names)
    for member in listing:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == int(CEREMONY_TIME.timestamp()) and member.mode == 0o644
    assert {"evidence/signers/audrey.pub.pem", "evidence/report.html"} <= set(names)
    # Same evidence, same bytes: rebuild the archive from the sealed workspace.
    copy = tmp_path / "ws"
    shutil.copytree(sealed_ceremony.root, copy)
    (copy / "archive.tar").unlink()
    again = build_evidence(copy, sealed_ceremony.people, sealed_ceremony.quorum)
    assert again.archive_path.read_bytes() == archive.read_bytes()
    assert_no_secrets(again.archive_path, sealed_ceremony.known_secrets)


def test_independent_tools_check_the_archive(sealed_ceremony: SealedCeremony, tmp_path) -> None:
    # GNU tar extracts it and coreutils sha256sum checks the manifest: no code of ours involved.
    subprocess.run(["tar", "-xf", str(sealed_ceremony.result.archive_path), "-C", str(tmp_path)],
                   check=True)  # fmt: skip
    done = subprocess.run(["sha256sum", "--strict", "-c", "evidence/SHA256SUMS"],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == len(
        (tmp_path / "evidence/SHA256SUMS").read_text().splitlines()
    )


def test_dsse_envelope_verifies_with_securesystemslib_alone(
    sealed_ceremony: SealedCeremony,
) -> None:
    root = sealed_ceremony.root
    envelope = Envelope.from_dict(json.loads((root / "evidence/statement.dsse.json").read_bytes()))
    # One key, one fingerprint: each DSSE keyid is the SHA-256 of the key's DER SPKI, as openssl
    # computes it.
    keys = [
        SSlibKey.from_crypto(
            serialization.load_pem_public_key(path.read_bytes()), keyid=openssl_spki_sha256(path)
        )
        for path in sorted((root / "evidence/signers").glob("*.pem"))
    ]
    accepted = envelope.verify(keys, threshold=4)
    assert len(accepted) == 4
    assert set(envelope.signatures) == {
        p.fingerprint.hex for p in sealed_ceremony.people if p.signer
    }
    statement = json.loads(envelope.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert envelope.payload_type == "application/vnd.in-toto+json"
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    for name, digest in subjects.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest
    on_disk = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith((".", "evidence/"))
    } - {"archive.tar"}
    reports = {"evidence/report.html"} | (
        {"evidence/report.pdf"} if (root / "evidence/report.pdf").exists() else set()
    )
    assert on_disk | reports == set(subjects)
    predicate = statement["predicate"]
    assert (
        predicate["transcript"]["head"]
        == hashlib.sha256((root / "transcript.jsonl").read_bytes().splitlines()[-1]).hexdigest()
    )
    assert predicate["quorum"] == {"custodian": 2, "witness": 1}
    assert predicate["rehearsal"] is True and predicate["exceptions"]
    assert [k["name"] for k in predicate["keys"]] == ["app-aes", "app-ec", "app-rsa"]
    assert predicate["kek"]["kid"].startswith("https://contoso-byok.vault.azure.net/keys/kek/")


def test_sealing_again_returns_the_sealed_result(sealed_ceremony: SealedCeremony) -> None:
    before = sealed_ceremony.result.archive_path.read_bytes()
    again = build_evidence(sealed_ceremony.root, sealed_ceremony.people, sealed_ceremony.quorum)
    assert again.archive_sha256 == sealed_ceremony.result.archive_sha256
    assert sealed_ceremony.result.archive_path.read_bytes() == before


@pytest.fixture(scope="module")
def workspace_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template") / "ws"
    secrets = make_workspace(root, [("only-ec", "EC-HSM", "P-256")])
    people, quorum = make_people(tmp_path_factory.mktemp("template-keys"), root)
    return root, secrets, people, quorum


def _fresh(workspace_template, tmp_path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(workspace_template[0], root)
    return root


def test_quorum_not_met_refuses_and_writes_nothing(workspace_template, tmp_path) -> None:
    root = _fresh(workspace_template, tmp_path)
    people, quorum = workspace_template[2], workspace_template[3]
    signers = [load_signer(p) for p in people if p.name in ("alice", "wendy")]
    with pytest.raises(RefusedError, match="quorum not met: missing 1 custodian"):
        build_evidence(root, people, quorum, signers)
    assert not (root / "evidence").exists() and not (root / "archive.tar").exists()


def test_signer_not_in_plan_refuses(workspace_template, tmp_path) -> None:
    root = _fresh(workspace_template, tmp_path)
    people, quorum = workspace_template[2], workspace_template[3]
    strangers, _ = make_people(tmp_path / "strangers")
    with pytest.raises(RefusedError, match="not the key of anyone in the plan"):
        build_evidence(root, people, quorum, [load_signer(strangers[0])])


@pytest.mark.parametrize(
    "plant",
    [
        "pem-private-key",
        "pkcs8-der",
        "pkcs1-der",
        "base64-pkcs8",
        "jwk-private",
        "pin",
        "ephemeral-hex",
        "token-store",
    ],
)
def test_secrets_refuse_sealing(workspace_template, tmp_path, plant: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    root = _fresh(workspace_template, tmp_path)
    secrets = workspace_template[1]
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = ec_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    planted = {
        "pem-private-key": ("notes.txt", ec_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
        "pkcs8-der": ("blob.bin", b"header" + pkcs8 + b"trailer"),
        "pkcs1-der": ("rsa.der", rsa.generate_private_key(65537, 1024).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption())),
        "base64-pkcs8": ("notebooks/leak.ipynb", json.dumps(
            {"text": __import__("base64").b64encode(pkcs8).decode()}).encode()),
        "jwk-private": ("jwk.json", json.dumps({"kty": "EC", "crv": "P-256", "x": "A" * 43,
                                                 "y": "B" * 43, "d": "C" * 43}).encode()),
        "pin": ("log.txt", f"user typed {secrets.pins[0]} here".encode()),
        "ephemeral-hex": ("debug.txt", secrets.secret_bytes[0].hex().encode()),
        "token-store": ("hsm/tokens/abc/token.object", b"\x00" * 64),
    }[plant]  # fmt: skip
    target = root / planted[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(planted[1])
    with pytest.raises(RefusedError, match=planted[0].replace(".", r"\.")):
        build_evidence(
            root,
            workspace_template[2],
            workspace_template[3],
            known_secrets=[*secrets.pins, *secrets.secret_bytes],
        )
    assert not (root / "archive.tar").exists()


def test_pins_in_environment_are_scanned_for(workspace_template, tmp_path, monkeypatch) -> None:
    root = _fresh(workspace_template, tmp_path)
    monkeypatch.setenv("CEREMONY_PIN_ALICE", "alice-pin-48151623")
    (root / "notes.txt").write_text("PIN was alice-pin-48151623\n")
    with pytest.raises(RefusedError, match=r"notes\.txt: known secret"):
        build_evidence(root, workspace_template[2], workspace_template[3])


def test_damaged_record_refuses(workspace_template, tmp_path) -> None:
    root = _fresh(workspace_template, tmp_path)
    record = json.loads((root / "kek.json").read_text())
    record["surprise"] = 1
    (root / "kek.json").write_text(json.dumps(record))
    with pytest.raises(RefusedError, match=r"kek\.json has unknown field"):
        build_evidence(root, workspace_template[2], workspace_template[3])


def test_broken_transcript_refuses(workspace_template, tmp_path) -> None:
    root = _fresh(workspace_template, tmp_path)
    lines = (root / "transcript.jsonl").read_bytes().splitlines(keepends=True)
    (root / "transcript.jsonl").write_bytes(b"".join(lines[:2] + lines[3:]))
    with pytest.raises(RefusedError, match="line 3"):
        build_evidence(root, workspace_template[2], workspace_template[3])


def test_symlink_refuses(workspace_template, tmp_path) -> None:
    root = _fresh(workspace_template, tmp_path)
    os.symlink("/etc/hostname", root / "host.txt")
    with pytest.raises(RefusedError, match="symbolic link"):
        build_evidence(root, workspace_template[2], workspace_template[3])


def test_wrong_kek_kid_in_byok_is_named(workspace_template, tmp_path) -> None:
    root = _fresh(workspace_template, tmp_path)
    kek = KekRecord.from_json((root / "kek.json").read_bytes())
    other = KekRecord(**{**kek.__dict__, "kid": kek.kid.replace("/kek/", "/other-kek/")})
    (root / "kek.json").write_bytes(other.to_json())
    people, quorum = workspace_template[2], workspace_template[3]
    # Sealing checks itself by verifying what it wrote; a .byok for another KEK must not pass.
    with pytest.raises(Exception, match=r"keys/only-ec\.byok: wrapped for .*/kek/"):
        build_evidence(root, people, quorum)


def _aes_workspace(tmp_path: Path, people, quorum) -> Path:
    root = tmp_path / "aes"
    make_workspace(root, [("only-aes", "oct-HSM", 128)], kek_bits=2048)
    enrol(root, people, quorum)
    return root


def _edit_proof(root: Path, **changes) -> None:
    path = root / "keys/only-aes.import.json"
    record = ImportRecord.from_json(path.read_bytes())
    path.write_bytes(replace(record, proof={**record.proof, **changes}).to_json())


def test_aes_unwrap_proof_is_checked_against_the_challenge(workspace_template, tmp_path) -> None:
    people, quorum = workspace_template[2], workspace_template[3]
    good = _aes_workspace(tmp_path / "good", people, quorum)
    build_evidence(good, people, quorum)
    checks = [c for c in verify_path(good).checks if c.check == "import"]
    assert [c.ok for c in checks] == [True] and "CKM_AES_KEY_WRAP challenge" in checks[0].detail

    wrong_answer = _aes_workspace(tmp_path / "wrong-answer", people, quorum)
    _edit_proof(wrong_answer, unwrapped=os.urandom(32).hex())
    with pytest.raises(Exception, match=r"only-aes\.import\.json: what the vault unwrapped is not"):
        build_evidence(wrong_answer, people, quorum)

    other_blob = _aes_workspace(tmp_path / "other-blob", people, quorum)
    _edit_proof(other_blob, wrapped=os.urandom(40).hex())
    with pytest.raises(Exception, match="unwrapped a challenge other than the one the HSM"):
        build_evidence(other_blob, people, quorum)

    no_record = _aes_workspace(tmp_path / "no-record", people, quorum)
    (no_record / "keys/only-aes.challenge.json").unlink()
    with pytest.raises(Exception, match=r"needs keys/only-aes\.challenge\.json"):
        build_evidence(no_record, people, quorum)

    no_proof = _aes_workspace(tmp_path / "no-proof", people, quorum)
    path = no_proof / "keys/only-aes.import.json"
    record = ImportRecord.from_json(path.read_bytes())
    path.write_bytes(replace(record, proof={"method": "none", "reason": "why"}).to_json())
    with pytest.raises(Exception, match="no possession proof for an AES key"):
        build_evidence(no_proof, people, quorum)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ceremony", *args], capture_output=True, text=True, check=False
    )


def test_cli_verify_exit_codes(sealed_ceremony: SealedCeremony, tmp_path) -> None:
    archive = sealed_ceremony.result.archive_path
    done = _cli("verify", str(archive))
    assert done.returncode == 0, done.stderr
    assert "VERIFIED" in done.stdout and sealed_ceremony.result.archive_sha256 in done.stdout
    as_json = json.loads(_cli("verify", "--json", str(archive)).stdout)
    assert as_json["verified"] is True and as_json["checks"]

    damaged = tmp_path / "damaged.tar"
    data = bytearray(archive.read_bytes())
    data[-20000] ^= 0xFF
    damaged.write_bytes(bytes(data))
    done = _cli("verify", str(damaged))
    assert done.returncode == 1 and "NOT VERIFIED" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("This verdict rests on the archive alone")

    assert _cli("verify", str(tmp_path / "missing.tar")).returncode == 2
    (tmp_path / "notatar.tar").write_text("hello\n" * 200)
    done = _cli("verify", str(tmp_path / "notatar.tar"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "not a tar archive" in done.stderr


def test_cli_fingerprint(sealed_ceremony: SealedCeremony) -> None:
    done = _cli("fingerprint", "--public-key", str(sealed_ceremony.root / "kek.pem"))
    assert done.returncode == 0
    kek = KekRecord.from_json((sealed_ceremony.root / "kek.json").read_bytes())
    assert done.stdout.splitlines()[0] == kek.public_key_sha256


def test_missing_workspace_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError):
        verify_path(tmp_path / "nothing")


def test_cli_verify_with_trusted_signer_keys(sealed_ceremony: SealedCeremony) -> None:
    archive = str(sealed_ceremony.result.archive_path)
    trusted = [str(p) for p in sorted((sealed_ceremony.root / "evidence/signers").glob("*.pem"))]
    args = [a for path in trusted for a in ("--signer-key", path)]
    assert _cli("verify", archive, *args).returncode == 0
    partial = [a for path in trusted if "wendy" not in path for a in ("--signer-key", path)]
    done = _cli("verify", archive, *partial)
    assert done.returncode == 1 and "wendy's key" in done.stdout
    assert "not among the signer keys given apart" in done.stdout
    assert done.stdout.splitlines()[-1].endswith("4 signer key(s) given apart.")


def test_cli_seal(workspace_template, tmp_path) -> None:
    root = _fresh(workspace_template, tmp_path)
    people, quorum = workspace_template[2], workspace_template[3]
    spec = {"people": [p.to_dict() for p in people], "quorum": quorum.to_dict()}
    (tmp_path / "people.json").write_text(json.dumps(spec))
    done = _cli("seal", str(root), "--people", str(tmp_path / "people.json"),
                "--time", "2026-11-28T12:00:00Z")  # fmt: skip
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256((root / "archive.tar").read_bytes()).hexdigest()
    assert digest in done.stdout.replace(" ", "").lower()
    with tarfile.open(root / "archive.tar") as tar:
        assert {m.mtime for m in tar.getmembers()} == {int(CEREMONY_TIME.timestamp())}
    assert_no_secrets(root / "archive.tar", [*workspace_template[1].pins])
    (tmp_path / "bad.json").write_text("{}")
    done = _cli("seal", str(tmp_path), "--people", str(tmp_path / "bad.json"))
    assert done.returncode == 2 and "not a people file" in done.stderr


def test_a_signer_that_fails_is_named(workspace_template, tmp_path) -> None:
    # A fake for this one branch: a token that refuses to sign (wrong PIN, card pulled).
    root = _fresh(workspace_template, tmp_path)
    people, quorum = workspace_template[2], workspace_template[3]
    signers = [load_signer(p) for p in people if p.signer]

    class Refusing(type(signers[1])):
        def sign(self, payload: bytes):
            raise OSError("token removed")

    broken = Refusing.__new__(Refusing)
    broken.__dict__.update(signers[1].__dict__)
    with pytest.raises(RefusedError, match=r"bob could not sign the evidence \(OSError\)"):
        build_evidence(root, people, quorum, [signers[0], broken, *signers[2:]])
    assert not (root / "evidence").exists() and not (root / "archive.tar").exists()
