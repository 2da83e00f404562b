"""Import refusals that need no vault: type and curve rules, ciphertext shape, option rules."""

from __future__ import annotations

import hashlib

import pytest

from ceremony.errors import RefusedError, UsageError
from ceremony.vault.importer import (
    IMPORT_ID_TAG,
    ImportOptions,
    check_ciphertext,
    check_target,
    import_id_of,
)

KEK_BYTES = 256  # RSA-2048 KEK: the OAEP block is 256 bytes


def blob(wrapped: int) -> bytes:
    return bytes(KEK_BYTES + wrapped)


@pytest.mark.parametrize(
    ("kty", "curve", "wrapped", "aes_size"),
    [
        ("oct-HSM", None, 24, 128),
        ("oct-HSM", None, 32, 192),
        ("oct-HSM", None, 40, 256),
        ("EC-HSM", "P-256", 80, None),
        ("EC-HSM", "P-521", 248, None),
        ("RSA-HSM", None, 1224, None),
        ("RSA-HSM", None, 2384, None),
    ],
)
def test_ciphertext_fits_type(kty: str, curve: str | None, wrapped: int, aes_size: int) -> None:
    target = check_ciphertext(kty, curve, blob(wrapped), KEK_BYTES)
    assert (target.kty, target.curve, target.aes_size) == (kty, curve, aes_size)


@pytest.mark.parametrize(
    ("kty", "curve", "wrapped", "message"),
    [
        ("RSA-HSM", None, 40, "an AES key"),
        ("EC-HSM", "P-256", 1224, "an RSA key"),
        ("oct-HSM", None, 80, "an EC key"),
        ("RSA-HSM", None, 12, "not a 2048-bit RSA-OAEP block"),
        ("RSA-HSM", None, 1225, "not a 2048-bit RSA-OAEP block"),
        ("RSA-HSM", None, 4000, "no known"),
    ],
)
def test_ciphertext_type_mismatch_refused(
    kty: str, curve: str | None, wrapped: int, message: str
) -> None:
    with pytest.raises(RefusedError, match=message):
        check_ciphertext(kty, curve, blob(wrapped), KEK_BYTES)


@pytest.mark.parametrize(
    ("kty", "curve", "flavour", "message"),
    [
        ("RSA", None, None, "cannot be imported"),
        ("EC-HSM", None, None, "needs --curve"),
        ("EC-HSM", "P-192", None, "needs --curve"),
        ("RSA-HSM", "P-256", None, "EC-HSM only"),
        ("oct-HSM", None, "keyvault", "only into Azure Managed HSM"),
    ],
)
def test_target_refused(kty: str, curve: str | None, flavour: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_target(kty, curve, flavour)


def test_target_accepted() -> None:
    check_target("oct-HSM", None, "managed-hsm")
    check_target("oct-HSM", None, None)  # a local vault decides itself
    check_target("EC-HSM", "P-256K", "keyvault")


def test_options_rules() -> None:
    with pytest.raises(UsageError, match="release policy"):
        ImportOptions(exportable=True)
    with pytest.raises(UsageError, match="set by the ceremony"):
        ImportOptions(tags={IMPORT_ID_TAG: "x"})
    assert ImportOptions(exportable=True, release_policy=b"{}").exportable


def test_import_id_is_sha256_of_the_package() -> None:
    assert import_id_of(b"package") == hashlib.sha256(b"package").hexdigest()
