"""steps.upload: phase 04 — import each .byok into the vault and prove the vault holds the key.

Refuses a .byok whose digest differs from the one the witnesses confirmed at checkpoint 03;
imports each key exactly once (a rerun recognises an earlier import); records the proof.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ceremony.canonical import canonical_json, sha256_hex
from ceremony.checkpoint import CheckpointItem
from ceremony.errors import RefusedError, VaultError
from ceremony.plan import KeyPlan
from ceremony.steps.context import Context, StepResult, step
from ceremony.workspace import COMPLETED

IMPORTED = "key-imported"


def confirmed_digests(ctx: Context, phase: str) -> dict[str, str]:
    """label -> sha256 of the checkpoint items the last completion of `phase` recorded."""
    found: dict[str, str] = {}
    for event in ctx.workspace.events():
        if event.action == COMPLETED and event.phase == phase and isinstance(event.data, dict):
            found = {i["label"]: i["sha256"] for i in event.data.get("checkpoint", [])}
    return found


def _check_package(ctx: Context, target: str, data: bytes, confirmed: dict[str, str]) -> None:
    expected, actual = confirmed.get(target), sha256_hex(data)
    if expected != actual:
        raise RefusedError(
            f"{target} is not the package the witnesses confirmed at checkpoint 03: its SHA-256 "
            f"is {actual[:16]}..., the transcript says {str(expected)[:16]}....",
            "Stop: the file changed while it crossed the air gap. Find out how; then wrap again "
            "in a new ceremony. Never import a package nobody confirmed.",
        )


def _options(key: KeyPlan) -> Any:
    from ceremony.vault import ImportOptions

    policy = canonical_json(key.release_policy) if key.release_policy is not None else None
    return ImportOptions(
        key_ops=key.key_ops,
        enabled=key.enabled,
        not_before=key.not_before,
        expires_on=key.expires,
        exportable=key.exportable,
        release_policy=policy,
        tags=dict(key.tags),
    )


@step
def upload(ctx: Context) -> StepResult:
    """Phase 04: import, compare public halves, prove possession; one record per key."""
    from ceremony.vault import import_and_prove, load_public_key

    ws, conn = ctx.workspace, ctx.vault()
    confirmed = confirmed_digests(ctx, "03")
    facts, items, notes = [], [], []
    hsm_here = Path(ctx.plan.hsm.module).exists()
    with ExitStack() as stack:
        session = None
        for key in ctx.plan.keys:
            target, record_name = f"keys/{key.name}.byok", f"keys/{key.name}.import.json"
            if not ws.exists(record_name):
                data = ws.path(target).read_bytes()
                _check_package(ctx, target, data, confirmed)
                hsm_public, unwrap = None, None
                if key.spec.family != "AES":
                    pem = ws.path(f"keys/{key.name}.pub.pem").read_bytes()
                    hsm_public = load_public_key(pem, f"keys/{key.name}.pub.pem")
                elif hsm_here:
                    session = session or stack.enter_context(ctx.hsm())
                    unwrap = functools.partial(session.unwrap_challenge, key.name)
                try:
                    result = import_and_prove(
                        conn,
                        key.name,
                        data,
                        key.spec.kty,
                        curve=key.spec.curve,
                        options=_options(key),
                        hsm_public=hsm_public,
                        unwrap=unwrap,
                    )
                except VaultError as exc:
                    raise VaultError(
                        f"{key.name} is not imported: {exc.message}",
                        f"{exc.remedy} If the vault is unavailable, wait and rerun with the same "
                        "plan and workspace: it resumes here, and a key already imported is "
                        "recognised, never imported twice.",
                    ) from None
                ws.write_new(record_name, _record(key, data, result.to_dict()).to_json())
                ctx.record(
                    IMPORTED, {"name": key.name, "kid": result.result.key.id, "byok": target}
                )
            record = _read(ws, record_name)
            proof = record.proof
            facts.append((key.name, f"{record.kid}; proof: {proof.get('method')}"))
            if proof.get("method") == "none":
                notes.append(f"{key.name}: {proof['reason']}")
            fingerprint = record.attributes.get("public_key_sha256")
            if fingerprint:
                items.append(CheckpointItem(f"{key.name} public key in the vault", fingerprint))
            else:
                digest = sha256_hex(ws.path(record_name).read_bytes())
                items.append(CheckpointItem(f"{record_name} (AES: no public half)", digest))
    return StepResult("Keys imported into the vault", tuple(facts), tuple(items), tuple(notes))


def _read(ws: Any, name: str) -> Any:
    from ceremony.evidence.records import ImportRecord

    return ImportRecord.from_json(ws.path(name).read_bytes(), name)


def _record(key: KeyPlan, data: bytes, vault: dict[str, Any]) -> Any:
    """The evidence record (ceremony.evidence.records), from what the vault client reported."""
    from ceremony.evidence.records import ImportRecord

    fingerprint = vault.get("public_key_fingerprint") or {}
    attributes = {
        name: vault.get(name)
        for name in (
            "version", "vault_url", "key_ops", "enabled", "not_before", "expires_on",
            "exportable", "tags", "import_id", "recognised_existing_import", "import_attempts",
        )
    }  # fmt: skip
    attributes["public_key_sha256"] = fingerprint.get("sha256")
    pem = vault.get("public_key_pem")
    return ImportRecord(
        name=key.name,
        kid=vault["kid"],
        kty=vault["kty"],
        byok_sha256=sha256_hex(data),
        public_key_jwk=public_jwk(pem.encode()) if pem else None,
        proof=evidence_proof(vault.get("proof")),
        imported_at=vault.get("recorded_at") or dt.datetime.now(dt.UTC).isoformat(),
        attributes=attributes,
    )


def _b64url(value: int | bytes) -> str:
    if isinstance(value, int):
        value = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def public_jwk(pem: bytes) -> dict[str, str]:
    """The public JWK (RFC 7517 members) of the vault key's public half."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ceremony.publickey import curve_name
    from ceremony.vault import load_public_key

    public = load_public_key(pem, "the vault's public key")
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": _b64url(numbers.n), "e": _b64url(numbers.e)}
    point, size = public.public_numbers(), (public.curve.key_size + 7) // 8
    return {
        "kty": "EC",
        "crv": curve_name(public),
        "x": _b64url(point.x.to_bytes(size, "big")),
        "y": _b64url(point.y.to_bytes(size, "big")),
    }


def evidence_proof(proof: dict[str, Any] | None) -> dict[str, Any]:
    """The possession proof in the shape the evidence verifier reads (records.PROOF_SHAPES)."""
    if proof is None:
        return {
            "method": "none",
            "reason": "the AES key's possession proof needs the HSM, which is not on this machine",
        }
    shaped = {"method": proof["method"], "algorithm": proof["algorithm"]}
    if proof["method"] == "sign":
        shaped["challenge"] = proof["challenge"]
        shaped["signature"] = _b64url(bytes.fromhex(proof["response"]))
    elif proof["method"] == "wrap":
        challenge = hashlib.sha256(bytes.fromhex(proof["challenge"])).hexdigest()
        shaped["challenge_sha256"] = challenge
        shaped["wrapped"] = proof["response"]
        shaped["unwrapped_sha256"] = challenge if proof["verified"] else None
    else:
        shaped.update(challenge=proof["challenge"], response=proof["response"])
    shaped["checked_by"] = proof["checked_by"]
    return shaped
