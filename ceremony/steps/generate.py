"""steps.generate: phase 02 — generate each target key inside the HSM and record its public half.

Generates a key only when the token has none of that label; after an interruption it adopts the
key this ceremony started to generate (the token, not the medium, is the truth here), and refuses
any other. Never sees private key bytes.
"""

from __future__ import annotations

from typing import Any

from ceremony.canonical import sha256_hex
from ceremony.checkpoint import CheckpointItem
from ceremony.errors import RefusedError
from ceremony.events import HALF_MADE_REMOVED, KEY_ADOPTED, KEY_GENERATED, KEY_GENERATING
from ceremony.steps.context import Context, StepResult, step


def _started_by_this_ceremony(ctx: Context, name: str) -> bool:
    return any(
        e.action == KEY_GENERATING and isinstance(e.data, dict) and e.data.get("name") == name
        for e in ctx.workspace.events()
    )


def _free_label(ctx: Context, session: Any, name: str) -> None:
    """Before generating: the label must be free. It is recorded as started only then, so what
    an interrupted generation of it left (a key pair's public half) is this ceremony's own, and
    is removed; anything else with the label is refused."""
    if _started_by_this_ceremony(ctx, name):
        removed = session.remove_half_made(name)
        if removed:
            ctx.record(HALF_MADE_REMOVED, {"name": name, "objects": removed})
    elif session.label_in_use(name):
        raise RefusedError(
            f"The token already holds an object labelled {name!r} that this ceremony did not make.",
            "Never reuse an object of unknown origin: remove it with the token's security "
            "officer, or rename the key in a new plan.",
        )


@step
def generate(ctx: Context) -> StepResult:
    """Phase 02: one key per [[keys]] entry of the plan, inside the HSM."""
    facts, items = [], []
    with ctx.hsm() as session:
        info = session.describe().to_dict()
        hsm = {"library": info["library"], "token": info["token"]}
        for key in ctx.plan.keys:
            found = session.find_key(key.name)
            if found is None:
                _free_label(ctx, session, key.name)
                ctx.record(KEY_GENERATING, {"name": key.name, "spec": key.spec.describe()})
                found = session.generate(
                    key.spec, key.name, wrap_with_trusted=ctx.plan.hsm.wrap_with_trusted
                )
                how, action = "generated", KEY_GENERATED
            elif _started_by_this_ceremony(ctx, key.name) and found.spec == key.spec:
                how, action = "adopted after an interruption", KEY_ADOPTED
            else:
                raise RefusedError(
                    f"The token already holds a key labelled {key.name!r} that this "
                    "ceremony did not generate.",
                    "Never reuse a key of unknown origin: remove it with the token's security "
                    "officer, or rename the key in a new plan.",
                )
            record = found.to_evidence(key.name, hsm)
            if found.public_key_pem:
                ctx.write(f"keys/{key.name}.pub.pem", found.public_key_pem.encode())
            record_bytes = record.to_json()
            ctx.write(f"keys/{key.name}.json", record_bytes)
            ctx.record(
                action, {"name": key.name, "id": found.id_hex, "public": record.public_key_sha256}
            )
            facts.append(
                (f"key {key.name}", f"{key.spec.describe()}, CKA_ID {record.id_hex}, {how}")
            )
            if record.public_key_sha256:
                label = f"public-key fingerprint of {key.name}"
                items.append(CheckpointItem(label, record.public_key_sha256))
            else:
                label = f"key record of {key.name} (AES: no public half)"
                items.append(CheckpointItem(label, sha256_hex(record_bytes)))
    return StepResult("Keys generated in the HSM", tuple(facts), tuple(items))
