"""vault.proof: evidence that the vault holds the very key the HSM generated.

Public halves compared number by number; possession shown by a round trip checked against the HSM's
public key or the digest of a challenge it wrapped. Never trusts the vault's word.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys.crypto import KeyWrapAlgorithm
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from ceremony.errors import RefusedError, VerificationError
from ceremony.publickey import (
    PublicKey,
    curve_name,
    describe_public_key,
    public_key_from_jwk,
)
from ceremony.vault.connect import VaultConnection, describe_azure_error, vault_errors

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyVaultKey

    from ceremony.evidence.records import ChallengeRecord

CHALLENGE_CONTEXT = b"byok-ceremony proof of possession v1\x00"
NONCE_BYTES = 32
_AES_KEY_WRAP = KeyWrapAlgorithm.ckm_aes_key_wrap
# JOSE algorithm and hash for an EC signature, by curve.
EC_SIGNING = {
    "P-256": ("ES256", hashes.SHA256()),
    "P-256K": ("ES256K", hashes.SHA256()),
    "P-384": ("ES384", hashes.SHA384()),
    "P-521": ("ES512", hashes.SHA512()),
}


@dataclass(frozen=True)
class PublicKeyMatch:
    """The cloud key's public numbers next to the HSM's; equal or the ceremony stops."""

    cloud: dict[str, Any]
    hsm: dict[str, Any]

    @property
    def equal(self) -> bool:
        return self.cloud == self.hsm

    def to_dict(self) -> dict[str, Any]:
        return {"equal": self.equal, "cloud": self.cloud, "hsm": self.hsm}


@dataclass(frozen=True)
class PossessionProof:
    """One round trip: what was asked of the vault, what it answered, and who checked it."""

    method: str
    algorithm: str
    challenge_hex: str
    response_hex: str
    checked_by: str
    verified: bool
    expected_sha256: str | None = None  # "unwrap": the digest the HSM recorded in phase 03

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "algorithm": self.algorithm,
            "challenge": self.challenge_hex,
            "response": self.response_hex,
            "checked_by": self.checked_by,
            "verified": self.verified,
            "expected_sha256": self.expected_sha256,
        }


def make_challenge(key_id: str) -> bytes:
    """A challenge bound to this ceremony step and key: context, key id, fresh random bytes."""
    return CHALLENGE_CONTEXT + key_id.encode() + b"\x00" + os.urandom(NONCE_BYTES)


def compare_public_keys(cloud_key: KeyVaultKey, hsm_public: PublicKey) -> PublicKeyMatch:
    """Compare RSA n/e or EC crv/x/y of the vault key with the HSM's; refuse on any difference."""
    cloud = describe_public_key(public_key_from_jwk(cloud_key.key))
    match = PublicKeyMatch(cloud=cloud, hsm=describe_public_key(hsm_public))
    if not match.equal:
        raise VerificationError(
            f"The public key of {cloud_key.id} differs from the HSM's public key.",
            "Stop: the vault does not hold the key the HSM generated; investigate before use.",
        )
    return match


def _ops(key: KeyVaultKey) -> set[str]:
    return {str(getattr(op, "value", op)) for op in key.key_operations or ()}


# The operations that can show possession, by key type (any one suffices). oct-HSM: the vault
# unwraps the challenge the HSM wrapped.
PROVING_OPS = {"RSA-HSM": ("sign", "decrypt"), "EC-HSM": ("sign",), "oct-HSM": ("unwrapKey",)}


def proof_obstacle(
    key: KeyVaultKey, ops: tuple[str, ...], now: datetime | None = None
) -> str | None:
    """Why the vault cannot take part in a round trip with this key now, or None if it can.

    `ops`: the key operations that could carry the round trip (any one suffices)."""
    props, now = key.properties, now or datetime.now(UTC)
    if not props.enabled:
        return "the key was imported disabled"
    if props.not_before and now < props.not_before:
        return "the key is not valid yet (not-before in the future)"
    if props.expires_on and now >= props.expires_on:
        return "the key has expired"
    if not _ops(key) & set(ops):
        return f"its key_ops allow none of {', '.join(ops)}"
    return None


def prove_asymmetric(
    conn: VaultConnection, key: KeyVaultKey, hsm_public: PublicKey
) -> PossessionProof:
    """The vault signs a fresh challenge; the HSM public key verifies it (pyca/cryptography).

    RSA keys without 'sign' prove possession by decrypting an RSA-OAEP-256 challenge instead.
    """
    challenge = make_challenge(key.id or "")
    crypto = conn.key_client().get_cryptography_client(key.name, key_version=key.properties.version)
    ops = _ops(key)
    if isinstance(hsm_public, rsa.RSAPublicKey) and "sign" not in ops and "decrypt" in ops:
        return _prove_by_decrypt(conn, crypto, key, hsm_public, challenge)
    if "sign" not in ops:
        raise RefusedError(
            f"The key {key.name} allows neither sign nor decrypt, so possession cannot be shown.",
            "Import it with key_ops including sign (or decrypt for RSA).",
        )
    if isinstance(hsm_public, rsa.RSAPublicKey):
        algorithm, hash_algorithm = "PS256", hashes.SHA256()
    else:
        algorithm, hash_algorithm = EC_SIGNING[curve_name(hsm_public)]
    digest = _digest(hash_algorithm, challenge)
    with vault_errors(f"sign the proof challenge with {key.name}", conn.url):
        signature = crypto.sign(algorithm, digest).signature
    verified = _verify(hsm_public, hash_algorithm, digest, signature)
    proof = PossessionProof(
        "sign",
        algorithm,
        challenge.hex(),
        signature.hex(),
        "HSM public key, pyca/cryptography",
        verified,
    )
    _require(proof, key)
    return proof


def _prove_by_decrypt(
    conn: VaultConnection, crypto: Any, key: KeyVaultKey, public: rsa.RSAPublicKey, challenge: bytes
) -> PossessionProof:
    secret = hashlib.sha256(challenge).digest()
    sealed = public.encrypt(
        secret,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    with vault_errors(f"decrypt the proof challenge with {key.name}", conn.url):
        opened = crypto.decrypt("RSA-OAEP-256", sealed).plaintext
    proof = PossessionProof(
        "decrypt",
        "RSA-OAEP-256",
        challenge.hex(),
        opened.hex(),
        "sealed with the HSM public key, compared",
        opened == secret,
    )
    _require(proof, key)
    return proof


def prove_unwrap(
    conn: VaultConnection, key: KeyVaultKey, challenge: ChallengeRecord
) -> PossessionProof:
    """The vault unwraps the challenge the HSM wrapped offline; SHA-256 of the answer must equal
    the digest the HSM recorded (the challenge itself never crossed the air gap).

    CKM_AES_KEY_WRAP (RFC 3394, like A*KW) is one the SDK cannot do locally, so the call always
    reaches the vault; with A128KW..A256KW, azure-keyvault-keys 4.11 tries local crypto first,
    although an oct-HSM JWK carries no 'k'.
    """
    if "unwrapKey" not in _ops(key):
        raise RefusedError(
            f"The key {key.name} does not allow unwrapKey, so possession cannot be shown.",
            "Import it with key_ops including unwrapKey.",
        )
    crypto = conn.key_client().get_cryptography_client(key.name, key_version=key.properties.version)
    with vault_errors(f"unwrap the proof challenge with {key.name}", conn.url):
        try:
            answer = crypto.unwrap_key(_AES_KEY_WRAP, bytes.fromhex(challenge.wrapped)).key
        except HttpResponseError as exc:
            if exc.status_code != 400:
                raise
            raise VerificationError(
                f"The vault could not unwrap the HSM's challenge with {key.id} "
                f"({describe_azure_error(exc)}): the possession proof failed.",
                "Stop: the vault key is not the HSM key (or the challenge record was altered); "
                "do not use it.",
            ) from None
    verified = hashlib.sha256(answer).hexdigest() == challenge.challenge_sha256
    proof = PossessionProof(
        "unwrap",
        challenge.algorithm,
        challenge.wrapped,
        answer.hex(),
        "SHA-256 compared with the HSM's challenge record",
        verified,
        challenge.challenge_sha256,
    )
    _require(proof, key)
    return proof


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _verify(public: PublicKey, algorithm: hashes.HashAlgorithm, digest: bytes, sig: bytes) -> bool:
    """Verify a JOSE signature over a precomputed digest; EC arrives as raw r||s."""
    prehashed = utils.Prehashed(algorithm)
    try:
        if isinstance(public, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH)
            public.verify(sig, digest, pss, prehashed)
        else:
            half = (public.curve.key_size + 7) // 8
            if len(sig) != 2 * half:
                return False
            r, s = int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")
            public.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(prehashed))
    except InvalidSignature:
        return False
    return True


def _require(proof: PossessionProof, key: KeyVaultKey) -> None:
    if not proof.verified:
        raise VerificationError(
            f"The possession proof ({proof.method}, {proof.algorithm}) for {key.id} failed.",
            "Stop: the vault key is not the HSM key; do not use it.",
        )
