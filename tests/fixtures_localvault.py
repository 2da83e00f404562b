"""Fixtures for the localvault area: a running local Key Vault and Managed HSM per test module.

Also an independent BYOK package builder (pyca/cryptography only), so tests can make .byok files
without the code under test.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from ceremony.localvault.server import LocalVault


@pytest.fixture(scope="module")
def local_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalVault]:
    """A Key Vault Premium flavoured local vault, serving for the whole test module."""
    with LocalVault(tmp_path_factory.mktemp("keyvault") / "state") as vault:
        yield vault


@pytest.fixture(scope="module")
def local_managed_hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalVault]:
    """A Managed HSM flavoured local vault (oct-HSM allowed), serving for the whole module."""
    with LocalVault(tmp_path_factory.mktemp("managedhsm") / "state", managed_hsm=True) as vault:
        yield vault


@pytest.fixture(scope="module")
def strict_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalVault]:
    """A Key Vault Premium flavoured local vault with no rehearsal allowance (strict)."""
    with LocalVault(tmp_path_factory.mktemp("strict") / "state", strict=True) as vault:
        yield vault


def kek_public_key(kek: object) -> rsa.RSAPublicKey:
    """The RSA public key of a KeyVaultKey returned by the SDK."""
    jwk = kek.key  # type: ignore[attr-defined]
    return rsa.RSAPublicNumbers(
        int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")
    ).public_key()


def byok_ciphertext(kek: rsa.RSAPublicKey, payload: bytes) -> bytes:
    """CKM_RSA_AES_KEY_WRAP with pyca/cryptography: OAEP-SHA1(AES-256 key) || RFC 5649(payload)."""
    transport = os.urandom(32)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
    return kek.encrypt(transport, oaep) + aes_key_wrap_with_padding(transport, payload)


def byok_file(kid: str, ciphertext: bytes) -> bytes:
    """A .byok JSON document as Azure specifies it."""
    document = {
        "schema_version": "1.0.0",
        "header": {"kid": kid, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
        "ciphertext": base64.urlsafe_b64encode(ciphertext).rstrip(b"=").decode(),
        "generator": "tests (pyca/cryptography)",
    }
    return json.dumps(document).encode()
