"""steps.upload: phase 04 — import each .byok into the vault and prove the vault holds the key.

Refuses a .byok or AES challenge whose digest differs from the one the witnesses confirmed at
checkpoint 03; imports each key exactly once (a rerun recognises an earlier import); records the
proof through the vault package's record (ImportOutcome.to_evidence).
"""

from __future__ import annotations

from typing import Any

from ceremony.canonical import canonical_json, sha256_hex
from ceremony.checkpoint import CheckpointItem
from ceremony.errors import RefusedError, VaultError
from ceremony.events import KEY_IMPORTED
from ceremony.plan import KeyPlan
from ceremony.steps.context import Context, StepResult, step
from ceremony.workspace import COMPLETED


def confirmed_digests(ctx: Context, phase: str) -> dict[str, str]:
    """label -> sha256 of the checkpoint items the last completion of `phase` recorded."""
    found: dict[str, str] = {}
    for event in ctx.workspace.events():
        if event.action == COMPLETED and event.phase == phase and isinstance(event.data, dict):
            found = {i["label"]: i["sha256"] for i in event.data.get("checkpoint", [])}
    return found


def _confirmed_file(ctx: Context, name: str, confirmed: dict[str, str]) -> bytes:
    """The bytes of a phase-03 output, refused unless they are what checkpoint 03 confirmed."""
    data = ctx.workspace.path(name).read_bytes()
    expected, actual = confirmed.get(name), sha256_hex(data)
    if expected != actual:
        raise RefusedError(
            f"{name} is not the file the witnesses confirmed at checkpoint 03: its SHA-256 "
            f"is {actual[:16]}..., the transcript says {str(expected)[:16]}....",
            "Stop: the file changed while it crossed the air gap. Find out how; then wrap again "
            "in a new ceremony. Never import a package nobody confirmed.",
        )
    return data


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
    from ceremony.evidence.records import ChallengeRecord, ImportRecord
    from ceremony.vault import import_and_prove, load_public_key

    ws, conn = ctx.workspace, ctx.vault()
    confirmed = confirmed_digests(ctx, "03")
    facts, items, notes = [], [], []
    for key in ctx.plan.keys:
        target, record_name = f"keys/{key.name}.byok", f"keys/{key.name}.import.json"
        data = _confirmed_file(ctx, target, confirmed)
        hsm_public, challenge = None, None
        if key.spec.family == "AES":
            name = f"keys/{key.name}.challenge.json"
            challenge = ChallengeRecord.from_json(_confirmed_file(ctx, name, confirmed), name)
        else:
            name = f"keys/{key.name}.pub.pem"
            hsm_public = load_public_key(ws.path(name).read_bytes(), name)
        try:
            outcome = import_and_prove(
                conn,
                key.name,
                data,
                key.spec.kty,
                curve=key.spec.curve,
                options=_options(key),
                hsm_public=hsm_public,
                challenge=challenge,
            )
        except VaultError as exc:
            raise VaultError(
                f"{key.name} is not imported: {exc.message}",
                f"{exc.remedy} If the vault is unavailable, wait and rerun with the same "
                "plan and workspace: it resumes here, and a key already imported is "
                "recognised, never imported twice.",
            ) from None
        record_bytes = outcome.to_evidence().to_json()
        record = ImportRecord.from_json(record_bytes, record_name)
        proof = record.proof
        ctx.write(record_name, record_bytes)
        ctx.record(
            KEY_IMPORTED,
            {
                "name": key.name,
                "kid": outcome.result.key.id,
                "byok": target,
                "byok_sha256": sha256_hex(data),
                "sha256": sha256_hex(record_bytes),
                "proof": proof.get("method"),
            },
        )
        facts.append((f"possession proof of {key.name}", f"{proof.get('method')}; {record.kid}"))
        if proof.get("method") == "none":
            notes.append(f"{key.name}: {proof['reason']}")
        fingerprint = record.attributes.get("public_key_sha256")
        if fingerprint:
            label = f"public-key fingerprint of {key.name} in the vault"
            items.append(CheckpointItem(label, fingerprint))
        else:
            digest = sha256_hex(record_bytes)
            items.append(CheckpointItem(f"{record_name} (AES: no public half)", digest))
    return StepResult("Keys imported into the vault", tuple(facts), tuple(items), tuple(notes))
