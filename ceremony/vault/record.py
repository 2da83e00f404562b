"""vault.record: the import record for the evidence — what was imported, where, and the proof.

Orchestrates import, public-key comparison and the possession round trip into one record.
Never writes over an earlier record and never records a secret (the challenge is public).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ceremony.errors import VerificationError
from ceremony.fingerprint import fingerprint_public_key
from ceremony.vault.connect import VaultConnection
from ceremony.vault.files import write_new_json
from ceremony.vault.importer import ImportOptions, ImportResult, import_byok
from ceremony.vault.proof import (
    PossessionProof,
    PublicKeyMatch,
    compare_public_keys,
    prove_asymmetric,
    prove_symmetric,
)
from ceremony.vault.publickey import PublicKey, public_key_from_jwk, spki_pem

RECORD_TYPE = "https://byok-ceremony.example/import/v1"


@dataclass(frozen=True)
class ImportRecord:
    """keys/<name>.import.json: the vault key, how it got there, and the proof it is the HSM's."""

    result: ImportResult
    public_key_match: PublicKeyMatch | None
    proof: PossessionProof | None
    recorded_at: datetime

    def to_dict(self) -> dict[str, Any]:
        key, props = self.result.key, self.result.key.properties
        public_pem = None
        fingerprint = None
        if self.result.target.kty != "oct-HSM":
            pem = spki_pem(public_key_from_jwk(key.key))
            public_pem, fingerprint = pem.decode(), fingerprint_public_key(pem).to_dict()
        return {
            "record_type": RECORD_TYPE,
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
            "recorded_at": _iso(self.recorded_at),
        }


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
    unwrap: Callable[[bytes], bytes] | None = None,
    nonce: bytes | None = None,
) -> ImportRecord:
    """Import (or recognise) the key, compare public halves, run the possession round trip.

    RSA/EC need `hsm_public` for the comparison and proof; oct-HSM needs `unwrap` (the HSM key's
    AES-KW unwrap). Without them the record says no proof was made (proof None).
    """
    result = import_byok(conn, name, byok, kty, curve=curve, options=options, hsm_public=hsm_public)
    check_imported_type(result)
    match, proof = None, None
    if kty != "oct-HSM" and hsm_public is not None:
        match = compare_public_keys(result.key, hsm_public)
        proof = prove_asymmetric(conn, result.key, hsm_public, nonce=nonce)
    elif kty == "oct-HSM" and unwrap is not None and result.target.aes_size:
        proof = prove_symmetric(conn, result.key, result.target.aes_size, unwrap, nonce=nonce)
    return ImportRecord(result, match, proof, datetime.now(UTC))


def import_record_path(keys_dir: Path, name: str) -> Path:
    """Where the workbook keeps the record: keys/<name>.import.json."""
    return Path(keys_dir) / f"{name}.import.json"


def write_import_record(record: ImportRecord, path: Path) -> Path:
    """Write the record create-exclusive (an existing record is never replaced)."""
    write_new_json(Path(path), record.to_dict())
    return Path(path)
