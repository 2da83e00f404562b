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
    return check_kek(ctx, ctx.path(KEK_PEM).read_bytes())


def check_kek(ctx: Context, pem: bytes) -> str:
    """The KEK must have the fingerprint agreed out of band; its hex."""
    actual = fingerprint_public_key(pem)
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
    plan = ctx.plan
    kek_key = _from_carried_file(ctx) if plan.kek.file is not None else _fetched(ctx)
    digest = check_kek(ctx, kek_key.public_key_pem.encode())
    ctx.write(KEK_PEM, kek_key.public_key_pem.encode())
    record = kek_key.to_evidence(out_of_band_sha256=plan.kek.fingerprint)
    ctx.write(KEK_JSON, record.to_json())
    ctx.record("kek-accepted", {"kid": record.kid, "sha256": record.public_key_sha256})
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


def _fetched(ctx: Context) -> Any:
    from ceremony.vault import fetch_kek

    plan = ctx.plan
    return fetch_kek(
        ctx.vault(),
        plan.kek.name,
        version=plan.kek.version,
        expect_fingerprint=plan.kek.fingerprint,
    )


def _from_carried_file(ctx: Context) -> Any:
    """The KEK's public key carried in (`az keyvault key download`), from the path the reviewed
    plan names; never a file found in the workspace."""
    from ceremony.vault import kek_from_file

    plan = ctx.plan
    path = plan.kek.file
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise RefusedError(
            f"Cannot read the KEK file {path} named by the plan ({exc.strerror}).",
            "Put the file `az keyvault key download` wrote where plan field kek.file points.",
        ) from None
    return kek_from_file(pem, plan.vault.url, plan.kek.name, plan.kek.version, path.name)
