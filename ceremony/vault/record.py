"""vault.record: the outcome of an import — what was imported, where, and the proof — as evidence.

Orchestrates import, public-key comparison and the possession round trip; converts the outcome
to the evidence record (ceremony.evidence.records), the one place that record is built. Never
overwrites a record, never records a secret (challenges are random values made for the proof).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ceremony.errors import VerificationError
from ceremony.files import write_new
from ceremony.fingerprint import fingerprint_public_key
from ceremony.publickey import PublicKey, curve_name, public_key_from_jwk, spki_pem
from ceremony.vault.connect import VaultConnection
from ceremony.vault.importer import ImportOptions, ImportResult, import_byok
from ceremony.vault.proof import (
    PROVING_OPS,
    PossessionProof,
    PublicKeyMatch,
    compare_public_keys,
    proof_obstacle,
    prove_asymmetric,
    prove_unwrap,
)

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyVaultKey

    from ceremony.evidence.records import ChallengeRecord
    from ceremony.evidence.records import ImportRecord as EvidenceImportRecord


@dataclass(frozen=True)
class ImportOutcome:
    """The vault key, how it got there, and the proof it is the HSM's."""

    result: ImportResult
    public_key_match: PublicKeyMatch | None
    proof: PossessionProof | None
    recorded_at: datetime
    no_proof_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        key, props = self.result.key, self.result.key.properties
        public_pem = None
        fingerprint = None
        if self.result.target.kty != "oct-HSM":
            pem = spki_pem(public_key_from_jwk(key.key))
            public_pem, fingerprint = pem.decode(), fingerprint_public_key(pem).to_dict()
        return {
            "name": props.name,
            "kid": key.id,
            "version": props.version,
            "vault_url": props.vault_url,
            "kty": str(getattr(key.key_type, "value", key.key_type)),
            "curve": self.result.target.curve,
            "aes_size": self.result.target.aes_size,
            "key_ops": sorted(str(getattr(o, "value", o)) for o in key.key_operations or ()),
            "enabled": props.enabled,
            "not_before": _iso(props.not_before),
            "expires_on": _iso(props.expires_on),
            "exportable": bool(props.exportable),
            "tags": dict(props.tags or {}),
            "import_id": self.result.import_id,
            "recognised_existing_import": self.result.recognised,
            "import_attempts": self.result.attempts,
            "kek": {
                "kid": self.result.kek.kid,
                "fingerprint": self.result.kek.fingerprint.to_dict(),
            },
            "public_key_pem": public_pem,
            "public_key_fingerprint": fingerprint,
            "public_key_match": self.public_key_match.to_dict() if self.public_key_match else None,
            "proof": self.proof.to_dict() if self.proof else None,
            "no_proof_reason": self.no_proof_reason,
            "recorded_at": _iso(self.recorded_at),
        }

    def to_evidence(self) -> EvidenceImportRecord:
        """keys/<name>.import.json in the evidence schema (what the evidence verifier reads)."""
        from ceremony.evidence.records import ImportRecord

        data = self.to_dict()
        attributes = {name: data[name] for name in _EVIDENCE_ATTRIBUTES}
        attributes["public_key_sha256"] = (data["public_key_fingerprint"] or {}).get("sha256")
        return ImportRecord(
            name=data["name"],
            kid=data["kid"],
            kty=data["kty"],
            byok_sha256=self.result.import_id,
            public_key_jwk=public_jwk(self.result.key) if data["public_key_pem"] else None,
            proof=evidence_proof(self.proof, self.no_proof_reason),
            imported_at=data["recorded_at"],
            attributes=attributes,
        )


_EVIDENCE_ATTRIBUTES = (
    "version", "vault_url", "key_ops", "enabled", "not_before", "expires_on", "exportable",
    "tags", "import_id", "recognised_existing_import", "import_attempts",
)  # fmt: skip


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: KeyVaultKey) -> dict[str, str]:
    """The public members of the vault key's JWK (RFC 7517, base64url), for offline checks."""
    public = public_key_from_jwk(key.key)
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        return {"kty": "RSA", "n": _b64url(n), "e": _b64url(e)}
    point, size = public.public_numbers(), (public.curve.key_size + 7) // 8
    return {
        "kty": "EC",
        "crv": curve_name(public),
        "x": _b64url(point.x.to_bytes(size, "big")),
        "y": _b64url(point.y.to_bytes(size, "big")),
    }


def evidence_proof(proof: PossessionProof | None, reason: str | None = None) -> dict[str, Any]:
    """The possession proof in the evidence shape (records.PROOF_SHAPES); 'none' when absent."""
    if proof is None:
        return {"method": "none", "reason": f"no possession proof: {reason or 'not attempted'}"}
    shaped: dict[str, Any] = {"method": proof.method, "algorithm": proof.algorithm}
    if proof.method == "sign":
        shaped["challenge"] = proof.challenge_hex
        shaped["signature"] = _b64url(bytes.fromhex(proof.response_hex))
    elif proof.method == "unwrap":
        shaped["wrapped"] = proof.challenge_hex
        shaped["challenge_sha256"] = proof.expected_sha256
        shaped["unwrapped"] = proof.response_hex
    else:
        shaped.update(challenge=proof.challenge_hex, response=proof.response_hex)
    shaped["checked_by"] = proof.checked_by
    return shaped


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def check_imported_type(result: ImportResult) -> None:
    """The vault must report the type and curve that were asked for."""
    key, target = result.key, result.target
    kty = str(getattr(key.key_type, "value", key.key_type))
    crv = key.key.crv and str(getattr(key.key.crv, "value", key.key.crv))
    if kty != target.kty or (target.curve and crv != target.curve):
        raise VerificationError(
            f"The vault reports {key.id} as {kty} {crv or ''}, not {target.describe()}.".replace(
                "  ", " "
            ),
            "Stop and investigate: the vault did not import what was asked.",
        )


def import_and_prove(
    conn: VaultConnection,
    name: str,
    byok: bytes,
    kty: str,
    *,
    curve: str | None = None,
    options: ImportOptions | None = None,
    hsm_public: PublicKey | None = None,
    challenge: ChallengeRecord | None = None,
) -> ImportOutcome:
    """Import (or recognise) the key, compare public halves, run the possession round trip.

    RSA/EC need `hsm_public` for the comparison and proof. oct-HSM needs `challenge` (what the
    HSM wrapped offline, for the vault to unwrap). Without them, or when the key cannot be used
    now (disabled, not yet valid, no suitable key_ops), the outcome has no proof and says why.
    """
    result = import_byok(conn, name, byok, kty, curve=curve, options=options, hsm_public=hsm_public)
    check_imported_type(result)
    match, proof = None, None
    if kty != "oct-HSM" and hsm_public is not None:
        match = compare_public_keys(result.key, hsm_public)
    obstacle = proof_obstacle(result.key, PROVING_OPS[kty])
    if obstacle is None and kty == "oct-HSM":
        if challenge is None:
            obstacle = "no challenge wrapped by the HSM was given"
        else:
            proof = prove_unwrap(conn, result.key, challenge)
    elif obstacle is None:
        if hsm_public is None:
            obstacle = "no HSM public key was given"
        else:
            proof = prove_asymmetric(conn, result.key, hsm_public)
    return ImportOutcome(result, match, proof, datetime.now(UTC), obstacle)


def import_record_path(keys_dir: Path, name: str, *, new_version: bool = False) -> Path:
    """<keys_dir>/<name>.import.json: beside the .byok, where the workbook keeps it.

    A new version's record takes the first free <name>.<n>.import.json instead, so the records
    of earlier versions neither stop it nor are ever replaced."""
    path, number = Path(keys_dir) / f"{name}.import.json", 1
    while new_version and path.exists():
        number += 1
        path = Path(keys_dir) / f"{name}.{number}.import.json"
    return path


def write_import_record(outcome: ImportOutcome, path: Path) -> Path:
    """Write the evidence record create-exclusive (an existing record is never replaced)."""
    write_new(Path(path), outcome.to_evidence().to_json())
    return Path(path)
