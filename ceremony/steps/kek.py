"""steps.kek: phase 01 — obtain the key exchange key and check it against the agreed fingerprint.

Fetches the KEK from the vault (or takes kek.pem carried in from `az keyvault key download`),
writes kek.pem and kek.json once, and stops on any fingerprint mismatch. Never talks to the HSM.
"""

from __future__ import annotations

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
            record = _from_carried_file(ctx)
        else:
            from ceremony.vault import fetch_kek

            fetched = fetch_kek(
                ctx.vault(),
                plan.kek.name,
                version=plan.kek.version,
                expect_fingerprint=plan.kek.fingerprint,
            )
            ws.write_new(KEK_PEM, fetched.public_key_pem.encode())
            record = KekRecord(
                kid=fetched.kid,
                kty="RSA-HSM",
                size=fetched.size,
                key_ops=list(fetched.key_ops),
                public_key_sha256=fetched.fingerprint.hex,
                source="vault",
                out_of_band_sha256=plan.kek.fingerprint,
            )
        check_kek_file(ctx)
        ws.write_new(KEK_JSON, record.to_json())
        ctx.record("kek-accepted", {"kid": record.kid, "sha256": record.public_key_sha256})
    record = KekRecord.from_json(ctx.path(KEK_JSON).read_bytes(), KEK_JSON)
    digest = check_kek_file(ctx)
    return StepResult(
        "Key exchange key accepted",
        (
            ("kid", record.kid),
            ("type", f"{record.kty} {record.size}, key_ops {record.key_ops}"),
            ("source", record.source),
            ("expected fingerprint (plan)", plan.kek.fingerprint),
        ),
        (CheckpointItem(f"KEK {plan.kek.name} public key", digest),),
    )


def _from_carried_file(ctx: Context):
    """kek.pem placed in the workspace by hand: accepted only with a pinned version in the plan."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ceremony.evidence.records import KekRecord
    from ceremony.vault import load_public_key

    plan = ctx.plan
    if plan.kek.version is None:
        raise RefusedError(
            f"{KEK_PEM} was carried in, but the plan does not pin kek.version.",
            "Add kek.version to the plan (the .byok file must name the exact KEK version).",
        )
    public = load_public_key(ctx.path(KEK_PEM).read_bytes(), KEK_PEM)
    if not isinstance(public, rsa.RSAPublicKey):
        raise RefusedError(f"{KEK_PEM} is not an RSA public key.", "Download the KEK again.")
    digest = check_kek_file(ctx)
    return KekRecord(
        kid=f"{plan.vault.url}/keys/{plan.kek.name}/{plan.kek.version}",
        kty="RSA-HSM",
        size=public.key_size,
        key_ops=["import"],
        public_key_sha256=digest,
        source="file",
        out_of_band_sha256=plan.kek.fingerprint,
    )
