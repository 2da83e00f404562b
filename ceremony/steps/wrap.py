"""steps.wrap: phase 03 — wrap each generated key under the KEK into a .byok package.

Re-checks the KEK's fingerprint on this side of the air gap, runs the wrap self-test, writes each
.byok once and parses it back, and has each AES key wrap a challenge for phase 04's proof.
Never writes the ephemeral AES key, a challenge or any key material in clear.
"""

from __future__ import annotations

from typing import Any

from ceremony.canonical import sha256_hex
from ceremony.checkpoint import CheckpointItem
from ceremony.steps.context import Context, StepResult, step
from ceremony.steps.kek import KEK_JSON, KEK_PEM, check_kek_file

WRAPPED = "key-wrapped"
CHALLENGED = "aes-challenge-wrapped"


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
    with ctx.hsm() as session:
        token = session.describe().token
        test = session.self_test()
        warning = require_conformant(test, ctx.rehearsal)
        notes += [warning] if warning else []
        facts.append(("HSM self-test", test.summary()))
        generator = generator_text(token.manufacturer, token.model, token.firmware_version)
        for key in ctx.plan.keys:
            target = f"keys/{key.name}.byok"
            if not ws.exists(target):
                ciphertext = session.wrap_for_byok(key.name, kek_pem, test)
                data = ByokPackage(kek.kid, ciphertext, generator).to_bytes()
                parse_byok(data, kek.size)
                ws.write_new(target, data)
                ctx.record(WRAPPED, {"name": key.name, "byok_sha256": sha256_hex(data)})
            data = ws.path(target).read_bytes()
            package = parse_byok(data, kek.size)
            facts.append((target, f"{len(package.ciphertext)} bytes of ciphertext"))
            items.append(CheckpointItem(target, sha256_hex(data)))
            if key.spec.family == "AES":
                items.append(_challenge(ctx, session, key.name))
    return StepResult("Keys wrapped for the KEK", tuple(facts), tuple(items), tuple(notes))


def _challenge(ctx: Context, session: Any, name: str) -> CheckpointItem:
    """keys/<name>.challenge.json: an HSM-random challenge the AES key wraps, for phase 04.

    An AES key has no public half; the vault shows it holds the key by unwrapping this. Only the
    challenge's digest is written, so the online side cannot answer without the vault's key.
    """
    from ceremony.evidence.records import ChallengeRecord

    target = f"keys/{name}.challenge.json"
    if not ctx.workspace.exists(target):
        record = ChallengeRecord.drawn_by(session, name)
        ctx.workspace.write_new(target, record.to_json())
        ctx.record(CHALLENGED, {"name": name, "challenge_sha256": record.challenge_sha256})
    return CheckpointItem(target, sha256_hex(ctx.workspace.path(target).read_bytes()))
