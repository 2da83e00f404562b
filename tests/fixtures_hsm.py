"""Fixtures for the hsm area: one private SoftHSM2 directory per test run, a fresh token per module.

The directory is activated for the whole test process (SoftHSM reads SOFTHSM2_CONF once).
"""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ceremony.softhsm import SoftHsm

_counter = itertools.count(1)


@dataclass(frozen=True)
class HsmToken:
    """A throwaway token: where its module is, its label and user PIN."""

    softhsm: SoftHsm
    label: str
    pin: str

    @property
    def module_path(self) -> str:
        return self.softhsm.module_path

    def environ(self, with_pin: bool = True) -> dict[str, str]:
        """Environment for a child process (the CLI) that should see this token."""
        env = {**os.environ, **self.softhsm.environ()}
        env.pop("CEREMONY_PIN", None)
        if with_pin:
            env["CEREMONY_PIN"] = self.pin
        return env


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A SoftHsm activated for this test process."""
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    hsm.activate()
    yield hsm


def new_token(softhsm: SoftHsm, name: str) -> HsmToken:
    """Create a token with a unique label (at most 32 bytes) and a random PIN."""
    label = f"{next(_counter)}-{name}"[:32]
    pin = secrets.token_hex(8)
    softhsm.create_token(label, pin)
    return HsmToken(softhsm, label, pin)


@pytest.fixture(scope="module")
def hsm_token(softhsm: SoftHsm, request: pytest.FixtureRequest) -> HsmToken:
    """A fresh token for this test module."""
    return new_token(softhsm, request.module.__name__.rsplit(".", 1)[-1])


@dataclass(frozen=True)
class SoftwareKek:
    """A software RSA KEK for tests, standing in for the vault's: its private half unwraps."""

    private_key: rsa.RSAPrivateKey
    public_pem: bytes
    pem_path: Path
    private_pem_path: Path

    @property
    def bits(self) -> int:
        return self.private_key.key_size


def make_software_kek(directory: Path, bits: int = 2048) -> SoftwareKek:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem_path = directory / f"kek-{bits}.pem"
    pem_path.write_bytes(public_pem)
    private_pem_path = directory / f"kek-{bits}.key.pem"
    private_pem_path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return SoftwareKek(private_key, public_pem, pem_path, private_pem_path)


@pytest.fixture(scope="session")
def software_kek(tmp_path_factory: pytest.TempPathFactory) -> SoftwareKek:
    """An RSA-2048 KEK made in software for this test run."""
    return make_software_kek(tmp_path_factory.mktemp("kek"))


def strip_der_zero_padding(data: bytes) -> bytes:
    """Drop the zero bytes SoftHSM2 2.6 appends to a DER document before wrapping, only those."""
    assert data[0] == 0x30, "not a DER SEQUENCE"
    if data[1] < 0x80:
        end = 2 + data[1]
    else:
        count = data[1] & 0x7F
        end = 2 + count + int.from_bytes(data[2 : 2 + count], "big")
    assert data[end:] == b"\0" * (len(data) - end) and len(data) - end < 8, "bad trailing bytes"
    return data[:end]


def unwrap_with_cryptography(ciphertext: bytes, kek: SoftwareKek) -> bytes:
    """Undo CKM_RSA_AES_KEY_WRAP with pyca/cryptography: RSA-OAEP SHA-1, then RFC 5649."""
    split = kek.bits // 8
    sha1 = hashes.SHA1()
    aes_key = kek.private_key.decrypt(
        ciphertext[:split], padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
    )
    assert len(aes_key) == 32, "the ephemeral key must be AES-256"
    return keywrap.aes_key_unwrap_with_padding(aes_key, ciphertext[split:])


def unwrap_with_openssl(ciphertext: bytes, kek: SoftwareKek, workdir: Path) -> bytes:
    """Undo CKM_RSA_AES_KEY_WRAP with the openssl command line, a second implementation."""
    split = kek.bits // 8
    (workdir / "rsa.bin").write_bytes(ciphertext[:split])
    (workdir / "kwp.bin").write_bytes(ciphertext[split:])
    aes_key = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-decrypt",
            "-inkey",
            str(kek.private_pem_path),
            "-in",
            str(workdir / "rsa.bin"),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha1",
            "-pkeyopt",
            "rsa_mgf1_md:sha1",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return subprocess.run(
        [
            "openssl",
            "enc",
            "-d",
            "-id-aes256-wrap-pad",
            "-K",
            aes_key.hex(),
            "-iv",
            "A65959A6",
            "-in",
            str(workdir / "kwp.bin"),
        ],
        check=True,
        capture_output=True,
    ).stdout
