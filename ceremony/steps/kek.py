"""steps.kek: phase 01 — obtain the key exchange key and check it against the agreed fingerprint.

Fetches the KEK from the vault (or takes kek.pem carried in from `az keyvault key download`),
writes kek.pem and kek.json once, and stops on any fingerprint mismatch. Never talks to the HSM.
"""

from __future__ import annotations

from typing import Any

from ceremony.checkpoint import CheckpointItem
from ceremony.errors import RefusedError
from ceremony.fingerprint import fingerprint_public_key
from ceremony.steps.context import Context, StepResult, step

KEK_PEM, KEK_JSON = "kek.pem", "kek.json"


def check_kek_file(ctx: Context) -> str:
    """The KEK in the workspace must still have the fingerprint agreed out of band; its hex."""
    actual = fingerprint_public_key(ctx.path(KEK_PEM).read_bytes())
    if actual.hex != ctx.plan.kek.fingerprint:
        raise RefusedError(
            f"The KEK in {KEK_PEM} has fingerprint {actual.short}, but the plan expects "
            f"{ctx.plan.kek.fingerprint}: this is not the KEK the vault owner confirmed.",
            "Stop. Confirm the KEK fingerprint with the vault owner by another channel; never "
            "wrap a key for a KEK nobody vouched for.",
        )
    return actual.hex


@step
def kek(ctx: Context) -> StepResult:
    """Phase 01: the KEK's identity, properties and fingerprint."""
    from ceremony.evidence.records import KekRecord

    ws, plan = ctx.workspace, ctx.plan
    if not ws.exists(KEK_JSON):
        if ws.exists(KEK_PEM):
            kek_key = _from_carried_file(ctx)
        else:
            from ceremony.vault import fetch_kek

            kek_key = fetch_kek(
                ctx.vault(),
                plan.kek.name,
                version=plan.kek.version,
                expect_fingerprint=plan.kek.fingerprint,
            )
            ws.write_new(KEK_PEM, kek_key.public_key_pem.encode())
        check_kek_file(ctx)
        record = kek_key.to_evidence(out_of_band_sha256=plan.kek.fingerprint)
        ws.write_new(KEK_JSON, record.to_json())
        ctx.record("kek-accepted", {"kid": record.kid, "sha256": record.public_key_sha256})
    record = KekRecord.from_json(ctx.path(KEK_JSON).read_bytes(), KEK_JSON)
    digest = check_kek_file(ctx)
    return StepResult(
        "Key exchange key accepted",
        (
            ("key identifier", record.kid),
            ("type", f"{record.kty} {record.size}, key_ops {record.key_ops}"),
            ("source", record.source),
            ("expected fingerprint (plan)", plan.kek.fingerprint),
        ),
        (CheckpointItem(f"KEK fingerprint ({plan.kek.name} public key)", digest),),
    )


def _from_carried_file(ctx: Context) -> Any:
    """kek.pem placed in the workspace by hand: accepted only with a pinned version in the plan."""
    from ceremony.vault import kek_from_file

    plan = ctx.plan
    if plan.kek.version is None:
        raise RefusedError(
            f"{KEK_PEM} was carried in, but the plan does not pin kek.version.",
            "Add kek.version to the plan (the .byok file must name the exact KEK version).",
        )
    pem = ctx.path(KEK_PEM).read_bytes()
    return kek_from_file(pem, plan.vault.url, plan.kek.name, plan.kek.version, KEK_PEM)
