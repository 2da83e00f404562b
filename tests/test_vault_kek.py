"""KEK checks, PEM export and fingerprints (pure functions, cross-checked with openssl)."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.keyvault.keys import KeyVaultKey
from azure.keyvault.keys._generated.models import KeyAttributes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ceremony.errors import RefusedError, UsageError
from ceremony.evidence.records import KekRecord
from ceremony.fingerprint import Fingerprint
from ceremony.vault.kek import (
    check_fingerprint,
    check_kek,
    kek_from_file,
    kek_from_key,
    write_kek,
)

VAULT = "https://contoso.vault.azure.net"


def openssl_rsa_public(folder: Path, bits: int) -> tuple[bytes, bytes]:
    """An RSA public key made and exported by openssl: (SPKI PEM, SPKI DER)."""
    private = folder / f"rsa-{bits}.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}",
         "-out", str(private)],
        check=True, capture_output=True,
    )  # fmt: skip
    exported = [
        subprocess.run(
            ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", form],
            check=True,
            capture_output=True,
        ).stdout
        for form in ("PEM", "DER")
    ]
    return exported[0], exported[1]


@pytest.fixture(scope="module")
def openssl_rsa(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """An RSA-2048 public key made and exported by openssl: (SPKI PEM, SPKI DER)."""
    return openssl_rsa_public(tmp_path_factory.mktemp("openssl"), 2048)


def _modulus(pem: bytes) -> tuple[bytes, bytes]:
    """n and e as the vault's JWK carries them, read with openssl (not with the code under test)."""
    text = subprocess.run(
        ["openssl", "rsa", "-pubin", "-noout", "-modulus"], input=pem, check=True,
        capture_output=True,
    ).stdout.decode()  # fmt: skip
    n = bytes.fromhex(text.strip().split("=", 1)[1])
    return n, (65537).to_bytes(3, "big")


def make_key(
    pem: bytes,
    *,
    kid: str = f"{VAULT}/keys/kek/0123456789abcdef",
    kty: str = "RSA-HSM",
    ops: tuple[str, ...] = ("import",),
    enabled: bool = True,
    not_before: datetime | None = None,
    expires: datetime | None = None,
) -> KeyVaultKey:
    n, e = _modulus(pem)
    attributes = KeyAttributes(enabled=enabled, not_before=not_before, expires=expires)
    jwk = {"kid": kid, "kty": kty, "n": n, "e": e, "key_ops": list(ops)}
    return KeyVaultKey(kid, jwk=jwk, attributes=attributes)


def test_pem_and_fingerprint_equal_openssl(openssl_rsa: tuple[bytes, bytes]) -> None:
    pem, der = openssl_rsa
    kek = kek_from_key(make_key(pem), VAULT)
    assert kek.public_key_pem.encode() == pem
    assert kek.fingerprint.hex == hashlib.sha256(der).hexdigest()
    assert kek.size == 2048 and kek.version == "0123456789abcdef" and kek.name == "kek"


def test_kek_carried_in_as_a_file(openssl_rsa: tuple[bytes, bytes]) -> None:
    pem, der = openssl_rsa
    kek = kek_from_file(pem, VAULT, "kek", "0123abcd", "kek.pem")
    assert kek.kid == f"{VAULT}/keys/kek/0123abcd" and kek.size == 2048
    assert kek.fingerprint.hex == hashlib.sha256(der).hexdigest()
    record = kek.to_evidence(out_of_band_sha256=kek.fingerprint.hex)
    assert record.source == "file" and record.key_ops == ["import"]
    assert record.public_key_sha256 == hashlib.sha256(der).hexdigest()


def test_kek_file_must_hold_an_rsa_key_azure_takes(tmp_path: Path) -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(RefusedError, match=r"kek\.pem is not an RSA public key"):
        kek_from_file(ec_pem, VAULT, "kek", "1", "kek.pem")
    small, _ = openssl_rsa_public(tmp_path, 1024)
    with pytest.raises(RefusedError, match="2048, 3072 or 4096"):
        kek_from_file(small, VAULT, "kek", "1", "kek.pem")


def test_write_kek_writes_pem_and_json_and_never_overwrites(
    openssl_rsa: tuple[bytes, bytes], tmp_path: Path
) -> None:
    pem, der = openssl_rsa
    kek = kek_from_key(make_key(pem), VAULT)
    write_kek(kek, tmp_path / "kek.pem", out_of_band_sha256=kek.fingerprint.hex)
    assert (tmp_path / "kek.pem").read_bytes() == pem
    record = KekRecord.from_json((tmp_path / "kek.json").read_bytes())
    assert record.kid == f"{VAULT}/keys/kek/0123456789abcdef"
    assert record.public_key_sha256 == hashlib.sha256(der).hexdigest() == record.out_of_band_sha256
    with pytest.raises(RefusedError, match="already exists"):
        write_kek(kek, tmp_path / "kek.pem")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek.json", "kek.pem"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kid": "https://other.vault.azure.net/keys/kek/01"}, "not on the target vault"),
        ({"kid": f"{VAULT}/keys/kek"}, "has no version"),
        ({"kty": "RSA"}, "not HSM-backed"),
        ({"kty": "EC-HSM"}, "not RSA-HSM"),
        ({"ops": ("import", "sign")}, "exactly \\['import'\\]"),
        ({"ops": ("wrapKey", "unwrapKey")}, "exactly \\['import'\\]"),
        ({"ops": ()}, "no operations"),
        ({"enabled": False}, "disabled"),
        ({"not_before": datetime.now(UTC) + timedelta(days=1)}, "not valid before"),
        ({"expires": datetime.now(UTC) - timedelta(seconds=1)}, "expired"),
    ],
)
def test_check_kek_refuses(
    openssl_rsa: tuple[bytes, bytes], change: dict[str, object], message: str
) -> None:
    with pytest.raises(RefusedError, match=message):
        check_kek(make_key(openssl_rsa[0], **change), VAULT)  # type: ignore[arg-type]


def test_check_kek_accepts_inside_validity(openssl_rsa: tuple[bytes, bytes]) -> None:
    now = datetime.now(UTC)
    key = make_key(
        openssl_rsa[0], not_before=now - timedelta(hours=1), expires=now + timedelta(days=1)
    )
    check_kek(key, VAULT)
    check_kek(key, "https://CONTOSO.vault.azure.net:443/")


def test_check_kek_refuses_small_modulus(tmp_path: Path) -> None:
    pem, _ = openssl_rsa_public(tmp_path, 1024)
    with pytest.raises(RefusedError, match="1024 bits"):
        check_kek(make_key(pem), VAULT)


def test_fingerprint_forms_accepted_and_mismatch_refused() -> None:
    actual = Fingerprint.of(b"kek")
    hexed = actual.hex
    for form in (hexed, hexed.upper(), ":".join(hexed[i : i + 2] for i in range(0, 64, 2)),
                 actual.short, f"  {hexed}  "):  # fmt: skip
        check_fingerprint(actual, form)
    check_fingerprint(actual, None)
    with pytest.raises(RefusedError, match="does not match"):
        check_fingerprint(actual, Fingerprint.of(b"other").hex)
    with pytest.raises(UsageError):
        check_fingerprint(actual, "abc")
