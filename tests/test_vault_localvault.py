"""The whole cloud side against the local vault through the real SDK and a real SoftHSM2 token.

KEK create -> fetch -> wrap in the HSM -> import -> public-key comparison and possession proof,
for every importable key type; AES in the Managed HSM flavour.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization

from ceremony.byok import ByokPackage
from ceremony.errors import RefusedError, VerificationError
from ceremony.evidence.records import ChallengeRecord
from ceremony.hsm import HsmSession, open_session
from ceremony.keyspec import KeySpec
from ceremony.localvault import LocalVault
from ceremony.vault import (
    IMPORT_ID_TAG,
    ImportOptions,
    Kek,
    VaultConnection,
    compare_public_keys,
    connect,
    create_kek,
    fetch_kek,
    import_and_prove,
    load_public_key,
    prove_asymmetric,
    prove_unwrap,
)
from tests.fixtures_hsm import HsmToken

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyVaultKey

_labels = itertools.count(1)


@pytest.fixture(scope="module")
def kv(local_vault: LocalVault) -> VaultConnection:
    return connect(local_vault_dir=local_vault.state_dir)


@pytest.fixture(scope="module")
def mhsm(local_managed_hsm: LocalVault) -> VaultConnection:
    return connect(local_vault_dir=local_managed_hsm.state_dir)


@pytest.fixture(scope="module")
def kv_kek(kv: VaultConnection) -> Kek:
    return create_kek(kv, "kek-kv", size=2048)


@pytest.fixture(scope="module")
def mhsm_kek(mhsm: VaultConnection) -> Kek:
    return create_kek(mhsm, "kek-mhsm", size=3072)


@pytest.fixture
def session(hsm_token: HsmToken) -> Iterator[HsmSession]:
    with open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as opened:
        yield opened


def wrap_new_key(session: HsmSession, spec: KeySpec, kek: Kek) -> tuple[str, bytes, str | None]:
    """Generate a key in the token and wrap it for the KEK: (label, .byok bytes, public PEM)."""
    label = f"target-{next(_labels)}"
    generated = session.generate(spec, label)
    ciphertext = session.wrap_for_byok(label, kek.public_key_pem.encode(), session.self_test())
    package = ByokPackage(kek.kid, ciphertext, "tests; SoftHSM2")
    return label, package.to_bytes(), generated.public_key_pem


def versions(conn: VaultConnection, name: str) -> list[str]:
    client = conn.key_client()
    return [p.version for p in client.list_properties_of_key_versions(name)]


def test_kek_fetch_matches_created(kv: VaultConnection, kv_kek: Kek) -> None:
    fetched = fetch_kek(kv, "kek-kv", expect_fingerprint=kv_kek.fingerprint.hex.upper())
    assert fetched == kv_kek
    assert fetch_kek(kv, "kek-kv", version=kv_kek.version) == kv_kek
    # The fingerprint is SHA-256 of the DER SPKI, computed here without the code under test.
    public = serialization.load_pem_public_key(kv_kek.public_key_pem.encode())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert kv_kek.fingerprint.hex == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    "spec",
    [
        KeySpec("RSA-HSM", 2048),
        KeySpec("RSA-HSM", 3072),
        KeySpec("EC-HSM", curve="P-256"),
        KeySpec("EC-HSM", curve="P-384"),
        KeySpec("EC-HSM", curve="P-521"),
        KeySpec("EC-HSM", curve="P-256K"),
    ],
    ids=lambda spec: spec.describe().replace(" ", "-"),
)
def test_asymmetric_chain_in_key_vault(
    kv: VaultConnection, kv_kek: Kek, session: HsmSession, spec: KeySpec
) -> None:
    label, byok, public_pem = wrap_new_key(session, spec, kv_kek)
    assert public_pem is not None
    hsm_public = load_public_key(public_pem.encode())
    record = import_and_prove(kv, label, byok, spec.kty, curve=spec.curve, hsm_public=hsm_public)
    data = record.to_dict()
    assert data["kty"] == spec.kty and data["curve"] == spec.curve
    assert data["public_key_match"]["equal"] is True
    assert data["proof"]["verified"] is True
    assert data["proof"]["method"] == "sign"
    assert data["recognised_existing_import"] is False
    assert data["tags"][IMPORT_ID_TAG] == hashlib.sha256(byok).hexdigest()
    assert data["public_key_pem"] == public_pem
    assert versions(kv, label) == [data["version"]]


@pytest.mark.parametrize("size", [128, 192, 256])
def test_aes_chain_in_managed_hsm(
    mhsm: VaultConnection,
    mhsm_kek: Kek,
    session: HsmSession,
    size: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    label, byok, public_pem = wrap_new_key(session, KeySpec("oct-HSM", size), mhsm_kek)
    assert public_pem is None
    challenge = ChallengeRecord.drawn_by(session, label)
    with caplog.at_level(logging.WARNING, logger="azure"):
        record = import_and_prove(mhsm, label, byok, "oct-HSM", challenge=challenge)
    assert not caplog.records  # no local-crypto attempt by the SDK
    data = record.to_dict()
    assert data["kty"] == "oct-HSM" and data["aes_size"] == size
    assert data["proof"]["method"] == "unwrap"
    assert data["proof"]["algorithm"] == "CKM_AES_KEY_WRAP"
    assert data["proof"]["verified"] is True
    assert data["public_key_pem"] is None
    assert versions(mhsm, label) == [data["version"]]
    proof = record.to_evidence().proof
    assert proof["wrapped"] == challenge.wrapped
    assert proof["challenge_sha256"] == challenge.challenge_sha256
    assert hashlib.sha256(bytes.fromhex(proof["unwrapped"])).hexdigest() == (
        challenge.challenge_sha256
    )


@pytest.fixture(scope="module")
def two_aes_keys(
    mhsm: VaultConnection, mhsm_kek: Kek, hsm_token: HsmToken
) -> tuple[str, KeyVaultKey, KeyVaultKey]:
    """Two AES-128 keys made in the HSM and imported: (label A, vault key A, vault key B)."""
    with open_session(hsm_token.module_path, hsm_token.label, pin=hsm_token.pin) as session:
        found = []
        for _ in range(2):
            label, byok, _ = wrap_new_key(session, KeySpec("oct-HSM", 128), mhsm_kek)
            found.append((label, import_and_prove(mhsm, label, byok, "oct-HSM").result.key))
    return found[0][0], found[0][1], found[1][1]


def test_aes_proof_fails_for_another_vault_key(
    mhsm: VaultConnection, session: HsmSession, two_aes_keys: tuple
) -> None:
    label, key_a, key_b = two_aes_keys
    challenge = ChallengeRecord.drawn_by(session, label)
    assert prove_unwrap(mhsm, key_a, challenge).verified
    with pytest.raises(VerificationError, match="could not unwrap"):
        prove_unwrap(mhsm, key_b, challenge)


def test_aes_proof_fails_for_a_tampered_challenge(
    mhsm: VaultConnection, session: HsmSession, two_aes_keys: tuple
) -> None:
    label, key_a, _ = two_aes_keys
    challenge = ChallengeRecord.drawn_by(session, label)
    blob = bytearray(bytes.fromhex(challenge.wrapped))
    blob[-1] ^= 1
    with pytest.raises(VerificationError, match="could not unwrap"):
        prove_unwrap(mhsm, key_a, dataclasses.replace(challenge, wrapped=blob.hex()))
    other = hashlib.sha256(b"another challenge").hexdigest()
    with pytest.raises(VerificationError, match="possession proof"):
        prove_unwrap(mhsm, key_a, dataclasses.replace(challenge, challenge_sha256=other))


def test_aes_without_challenge_has_no_proof(
    mhsm: VaultConnection, mhsm_kek: Kek, session: HsmSession
) -> None:
    label, byok, _ = wrap_new_key(session, KeySpec("oct-HSM", 128), mhsm_kek)
    outcome = import_and_prove(mhsm, label, byok, "oct-HSM")
    assert outcome.proof is None
    assert outcome.no_proof_reason == "no challenge wrapped by the HSM was given"
    assert outcome.to_evidence().proof["method"] == "none"
    label, byok, _ = wrap_new_key(session, KeySpec("oct-HSM", 128), mhsm_kek)
    options = ImportOptions(key_ops=("encrypt", "decrypt", "wrapKey"))
    challenge = ChallengeRecord.drawn_by(session, label)
    outcome = import_and_prove(mhsm, label, byok, "oct-HSM", options=options, challenge=challenge)
    assert outcome.proof is None and "allow none of unwrapKey" in (outcome.no_proof_reason or "")


def test_rerun_recognises_the_import(
    kv: VaultConnection, kv_kek: Kek, session: HsmSession, tmp_path: Path
) -> None:
    label, byok, public_pem = wrap_new_key(session, KeySpec("EC-HSM", curve="P-256"), kv_kek)
    hsm_public = load_public_key(public_pem.encode())  # type: ignore[union-attr]
    first = import_and_prove(kv, label, byok, "EC-HSM", curve="P-256", hsm_public=hsm_public)
    again = import_and_prove(kv, label, byok, "EC-HSM", curve="P-256", hsm_public=hsm_public)
    assert again.result.recognised and not first.result.recognised
    assert again.result.key.id == first.result.key.id
    assert len(versions(kv, label)) == 1


def test_options_reach_the_vault(mhsm: VaultConnection, mhsm_kek: Kek, session: HsmSession) -> None:
    label, byok, public_pem = wrap_new_key(session, KeySpec("RSA-HSM", 2048), mhsm_kek)
    policy = json.dumps(
        {
            "version": "1.0.0",
            "anyOf": [
                {"authority": "https://attest.example", "allOf": [{"claim": "x", "equals": "y"}]}
            ],
        }
    ).encode()
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    options = ImportOptions(
        key_ops=("encrypt", "decrypt"),
        expires_on=expires,
        exportable=True,
        release_policy=policy,
        tags={"owner": "payments"},
    )
    outcome = import_and_prove(
        mhsm, label, byok, "RSA-HSM", options=options,
        hsm_public=load_public_key(public_pem.encode()),  # type: ignore[union-attr]
    )  # fmt: skip
    props = outcome.result.key.properties
    assert props.exportable and props.expires_on == expires
    assert props.tags["owner"] == "payments" and IMPORT_ID_TAG in props.tags
    assert sorted(outcome.result.key.key_operations) == ["decrypt", "encrypt"]
    assert outcome.proof is not None and outcome.proof.method == "decrypt"
    assert outcome.proof.verified
    assert outcome.to_evidence().proof["method"] == "decrypt"


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (ImportOptions(enabled=False), "imported disabled"),
        (ImportOptions(key_ops=("verify",)), "allow none of sign"),
    ],
)
def test_no_proof_when_the_key_cannot_take_part(
    kv: VaultConnection, kv_kek: Kek, session: HsmSession, options: ImportOptions, reason: str
) -> None:
    label, byok, public_pem = wrap_new_key(session, KeySpec("EC-HSM", curve="P-256"), kv_kek)
    hsm_public = load_public_key(public_pem.encode())  # type: ignore[union-attr]
    outcome = import_and_prove(
        kv, label, byok, "EC-HSM", curve="P-256", options=options, hsm_public=hsm_public
    )
    assert outcome.proof is None and reason in (outcome.no_proof_reason or "")
    assert outcome.public_key_match is not None and outcome.public_key_match.equal
    evidence = outcome.to_evidence()
    assert evidence.proof["method"] == "none" and reason in evidence.proof["reason"]


def test_proof_fails_for_a_different_key(
    kv: VaultConnection, kv_kek: Kek, session: HsmSession
) -> None:
    """The checks can fail: another key's public half neither matches nor verifies."""
    spec = KeySpec("EC-HSM", curve="P-256")
    label, byok, _ = wrap_new_key(session, spec, kv_kek)
    _, _, other_pem = wrap_new_key(session, spec, kv_kek)
    other = load_public_key(other_pem.encode())  # type: ignore[union-attr]
    outcome = import_and_prove(kv, label, byok, "EC-HSM", curve="P-256")
    with pytest.raises(VerificationError, match="differs from the HSM's public key"):
        compare_public_keys(outcome.result.key, other)
    with pytest.raises(VerificationError, match="possession proof"):
        prove_asymmetric(kv, outcome.result.key, other)


def test_expired_kek_refused(kv: VaultConnection) -> None:
    kv.key_client().create_rsa_key(
        "kek-old", size=2048, hardware_protected=True, key_operations=["import"],
        expires_on=datetime.now(UTC) - timedelta(minutes=1),
    )  # fmt: skip
    with pytest.raises(RefusedError, match="expired"):
        fetch_kek(kv, "kek-old")
