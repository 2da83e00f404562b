"""Fixtures for the evidence area: a workspace sealed once per session, and tamper helpers."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from ceremony.evidence import EvidenceResult, build_evidence
from ceremony.evidence.secrets import scan_archive
from ceremony.people import Person, Quorum
from tests.evidence_workspace import CEREMONY_TIME, WorkspaceSecrets, make_people, make_workspace


@dataclass(frozen=True)
class SealedCeremony:
    """A sealed workspace, who sealed it, and the secrets that were near it."""

    root: Path
    result: EvidenceResult
    people: list[Person]
    quorum: Quorum
    secrets: WorkspaceSecrets
    key_dir: Path

    @property
    def known_secrets(self) -> list[bytes | str]:
        return [*self.secrets.pins, *self.secrets.secret_bytes, *self.signing_key_files()]

    def signing_key_files(self) -> list[bytes]:
        return [path.read_bytes() for path in sorted(self.key_dir.glob("*.key"))]


def openssl_spki_sha256(path: Path) -> str:
    """SHA-256 of a PEM public key's DER SubjectPublicKeyInfo, by the openssl CLI: the one
    fingerprint a key has, and the DSSE key id."""
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(path), "-outform", "DER"],
                         capture_output=True, check=True).stdout  # fmt: skip
    return hashlib.sha256(der).hexdigest()


def assert_no_secrets(archive: Path, known: list[bytes | str]) -> None:
    """The secrets scan every archive made by a test goes through."""
    findings = scan_archive(archive, known)
    assert findings == [], findings


def members(archive_bytes: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:") as tar:
        return tar.getmembers()


def rewrite_archive(archive_bytes: bytes, changes: dict[str, bytes | None]) -> bytes:
    """A copy of the archive with members replaced (bytes), removed (None) or added; written
    with tarfile directly so the tampering does not depend on the code under test."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:") as tar:
        for member in tar:
            handle = tar.extractfile(member)
            files[member.name] = handle.read() if handle else b""
    for name, data in changes.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = int(CEREMONY_TIME.timestamp())
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


@pytest.fixture(scope="session")
def sealed_ceremony(tmp_path_factory: pytest.TempPathFactory) -> SealedCeremony:
    """A workspace with an RSA, an EC and an AES key, sealed by four file-key signers."""
    root = tmp_path_factory.mktemp("ceremony") / "workspace"
    secrets = make_workspace(root)
    key_dir = tmp_path_factory.mktemp("signing-keys")
    people, quorum = make_people(key_dir, root)
    result = build_evidence(
        root,
        people,
        quorum,
        ceremony_time=CEREMONY_TIME,
        known_secrets=[*secrets.pins, *secrets.secret_bytes],
    )
    sealed = SealedCeremony(root, result, people, quorum, secrets, key_dir)
    assert_no_secrets(result.archive_path, sealed.known_secrets)
    return sealed
