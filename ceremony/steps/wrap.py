"""steps.wrap: phase 03 — wrap each generated key under the KEK into a .byok package.

Re-checks the KEK's fingerprint on this side of the air gap, runs the wrap self-test (recording
both paths' verdicts and the path the plan's [hsm] wrap chose), makes each .byok in this run
(never adopts one found on the medium) and parses it back, and has each AES key wrap a challenge
for phase 04's proof.
Never writes the ephemeral AES key, a challenge or any key material in clear.
"""

from __future__ import annotations

from typing import Any

from ceremony.canonical import sha256_hex
from ceremony.checkpoint import CheckpointItem
from ceremony.events import AES_CHALLENGE_WRAPPED, KEK_TRUSTED, KEY_WRAPPED, WRAP_PATH_CHOSEN
from ceremony.pins import SO_PIN
from ceremony.steps.context import Context, StepResult, step
from ceremony.steps.kek import KEK_JSON, KEK_PEM, check_kek_file
from ceremony.wrap_paths import PLAN_CHOICE


@step
def wrap(ctx: Context) -> StepResult:
    """Phase 03: one .byok per key, for the KEK the witnesses confirmed at checkpoint 01."""
    from ceremony.byok import ByokPackage, generator_text, parse_byok
    from ceremony.evidence.records import KekRecord
    from ceremony.hsm import require_conformant

    ws = ctx.workspace
    kek_sha256 = check_kek_file(ctx)
    kek = KekRecord.from_json(ws.path(KEK_JSON).read_bytes(), KEK_JSON)
    kek_pem = ws.path(KEK_PEM).read_bytes()
    facts, notes = [("KEK key identifier", kek.kid)], []
    items = [
        CheckpointItem(f"KEK fingerprint ({ctx.plan.kek.name}, the KEK wrapped for)", kek_sha256)
    ]
    trusted = ctx.plan.hsm.wrap_with_trusted
    if trusted:
        facts.append(("wrap protection", _trust_kek(ctx, kek_pem, kek_sha256)))
    else:
        notes.append(UNPROTECTED)
    with ctx.hsm() as session:
        token = session.describe().token
        test = session.self_test(ctx.plan.hsm.wrap, PLAN_CHOICE)
        ctx.record(WRAP_PATH_CHOSEN, test.to_dict())
        warning = require_conformant(test, ctx.allowances)
        notes += [warning] if warning else []
        facts.append(("HSM self-test", test.summary()))
        facts.append(("wrap path", f"{test.path} ({test.reason})"))
        generator = generator_text(token.manufacturer, token.model, token.firmware_version)
        for key in ctx.plan.keys:
            target = f"keys/{key.name}.byok"
            ciphertext = session.wrap_for_byok(key.name, kek_pem, test, trusted=trusted)
            data = ByokPackage(kek.kid, ciphertext, generator).to_bytes()
            package = parse_byok(data, kek.size)
            ctx.write(target, data)
            ctx.record(KEY_WRAPPED, {"name": key.name, "byok_sha256": sha256_hex(data)})
            facts.append((target, f"{len(package.ciphertext)} bytes of ciphertext"))
            items.append(CheckpointItem(target, sha256_hex(data)))
            if key.spec.family == "AES":
                items.append(_challenge(ctx, session, key.name))
    return StepResult("Keys wrapped for the KEK", tuple(facts), tuple(items), tuple(notes))


UNPROTECTED = (
    "Wrap protection: none. The plan accepts (hsm.wrap_with_trusted = false) that code holding "
    "the user PIN could wrap the ceremony keys under a key of its own."
)


def _trust_kek(ctx: Context, kek_pem: bytes, kek_sha256: str) -> str:
    """The security officer's witnessed step: the KEK becomes the token's trusted wrapping key,
    the only key the token will wrap the ceremony keys (CKA_WRAP_WITH_TRUSTED) under."""
    from ceremony.hsm import load_kek, read_pin
    from ceremony.hsm.trusted import install_trusted_kek

    plan = ctx.plan
    ctx.require_hsm_module()
    so_pin = read_pin(SO_PIN, f"Security officer: SO PIN of token {plan.hsm.token!r} (hidden): ")
    label = f"{plan.kek.name} (trusted KEK)"
    done = install_trusted_kek(plan.hsm.module, plan.hsm.token, so_pin, load_kek(kek_pem), label)
    ctx.record(
        KEK_TRUSTED,
        {
            "label": done.label,
            "id": done.id_hex,
            "kek_sha256": kek_sha256,
            "installed_now": done.installed_now,
        },
    )
    return (
        f"ceremony keys are CKA_WRAP_WITH_TRUSTED; the security officer trusted only the KEK "
        f"(token object {done.label!r}, CKA_ID {done.id_hex})"
    )


def _challenge(ctx: Context, session: Any, name: str) -> CheckpointItem:
    """keys/<name>.challenge.json: an HSM-random challenge the AES key wraps, for phase 04.

    An AES key has no public half; the vault shows it holds the key by unwrapping this. Only the
    challenge's digest is written, so the online side cannot answer without the vault's key.
    """
    from ceremony.evidence.records import ChallengeRecord

    target = f"keys/{name}.challenge.json"
    record = ChallengeRecord.drawn_by(session, name)
    data = record.to_json()
    ctx.write(target, data)
    ctx.record(
        AES_CHALLENGE_WRAPPED,
        {"name": name, "challenge_sha256": record.challenge_sha256, "sha256": sha256_hex(data)},
    )
    return CheckpointItem(target, sha256_hex(data))
