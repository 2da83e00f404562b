"""Workspace records and the secrets scan, as units."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ceremony.errors import UsageError
from ceremony.evidence.records import (
    ChallengeRecord,
    ImportRecord,
    KekRecord,
    KeyRecord,
    PreflightRecord,
)
from ceremony.evidence.secrets import scan_bytes, secret_field

KEK = KekRecord(
    kid="https://v.vault.azure.net/keys/kek/0123abcd",
    kty="RSA-HSM",
    size=3072,
    key_ops=["import"],
    public_key_sha256="ab" * 32,
    source="file",
)


def test_records_round_trip() -> None:
    key = KeyRecord("k", "EC-HSM", None, "P-256", "k", "01", {"CKA_SENSITIVE": True}, "cd" * 32)
    imported = ImportRecord("k", "https://v/keys/k/1", "EC-HSM", "ef" * 32, None, {}, "t")
    preflight = PreflightRecord({"python": "3.11"}, {}, {}, None, True)
    challenge = ChallengeRecord.of("k", b"c" * 32, b"w" * 40)
    for record in (KEK, key, imported, preflight, challenge):
        again = type(record).from_json(record.to_json())
        assert again == record
        assert json.loads(record.to_json())["schema_version"] == 1


def test_challenge_record_keeps_only_the_digest() -> None:
    challenge = ChallengeRecord.of("k", b"c" * 32, b"w" * 40)
    assert challenge.algorithm == "CKM_AES_KEY_WRAP" and challenge.wrapped == (b"w" * 40).hex()
    assert challenge.challenge_sha256 == hashlib.sha256(b"c" * 32).hexdigest()
    assert (b"c" * 32).hex().encode() not in challenge.to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": "3072"}, "field size has the wrong type"),
        ({"size": True}, "field size has the wrong type"),
        ({"key_ops": "import"}, "field key_ops has the wrong type"),
        ({"extra": 1}, "unknown field"),
        ({"schema_version": 2}, "schema_version 2"),
    ],
)
def test_records_refuse_bad_fields(change, message) -> None:
    with pytest.raises(UsageError, match=message):
        KekRecord.from_dict({**KEK.to_dict(), **change})
    data = KEK.to_dict()
    del data["kid"]
    with pytest.raises(UsageError, match="lacks the field kid"):
        KekRecord.from_dict(data)
    with pytest.raises(UsageError, match="is not JSON"):
        KekRecord.from_json(b"{", "kek.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"wrapped": "zz" * 40}, "not hex"),
        ({"challenge_sha256": "ab" * 31}, "wrong length"),
        ({"wrapped": "ab" * 20}, "wrong length"),
        ({"wrapped": "ab" * 41}, "wrong length"),
    ],
)
def test_challenge_record_refuses_what_the_vault_could_not_use(change, message) -> None:
    """Refused on reading, so `ceremony import` stops before it imports anything."""
    good = ChallengeRecord.of("k", b"c" * 32, b"w" * 40).to_dict()
    with pytest.raises(UsageError, match=f"k.challenge.json .*{message}"):
        ChallengeRecord.from_dict({**good, **change}, "k.challenge.json")


def _der(key, fmt) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_scan_finds_ec_private_keys(curve) -> None:
    key = ec.generate_private_key(curve)
    pkcs8 = _der(key, serialization.PrivateFormat.PKCS8)
    sec1 = _der(key, serialization.PrivateFormat.TraditionalOpenSSL)
    assert scan_bytes(b"x" + pkcs8 + b"y") == "a DER private key (PKCS#8, PKCS#1 or SEC1)"
    assert scan_bytes(sec1) == "a DER private key (PKCS#8, PKCS#1 or SEC1)"
    wrapped = base64.urlsafe_b64encode(pkcs8).rstrip(b"=")
    assert scan_bytes(b'{"t": "' + wrapped + b'"}') == "a base64-encoded private key"


def test_scan_finds_rsa_and_pem_and_known_secrets() -> None:
    key = rsa.generate_private_key(65537, 2048)
    assert scan_bytes(_der(key, serialization.PrivateFormat.TraditionalOpenSSL))
    assert scan_bytes(b"-----BEGIN RSA PRIVATE KEY-----\n") == "a PEM private key block"
    assert scan_bytes(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n") == "a PEM private key block"
    secret = bytes(range(32))
    for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
        assert scan_bytes(b"..." + form + b"...", [secret]).startswith("known secret #1")
    assert scan_bytes(b"pin: 4711 ", ["4711"])
    assert scan_bytes(b"sha256 ab4711cd", ["4711"]) is None  # not inside a longer token


def test_scan_leaves_public_material_alone() -> None:
    key = rsa.generate_private_key(65537, 2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk = b'{"kty": "RSA", "n": "' + base64.urlsafe_b64encode(public) + b'", "e": "AQAB"}'
    for data in (public, pem, jwk, bytes(range(256)) * 64):
        assert scan_bytes(data) is None


def test_secret_field_names() -> None:
    assert secret_field({"a": {"user_pin": "x"}}) == "data.a.user_pin"
    assert secret_field({"list": [{"Password": 1}]}) == "data.list[0].Password"
    assert secret_field({"pin_source": "env", "spinner": 1, "token_label": "t"}) is None
