"""steps.generate: phase 02 — generate each target key inside the HSM and record its public half.

Generates a key only when the token has none of that label; after an interruption it adopts the
key this ceremony started to generate, and refuses any other. Never sees private key bytes.
"""

from __future__ import annotations

from ceremony.canonical import sha256_hex
from ceremony.checkpoint import CheckpointItem
from ceremony.errors import RefusedError
from ceremony.steps.context import Context, StepResult, step

GENERATING, GENERATED, ADOPTED = "key-generating", "key-generated", "key-adopted"


def _started_by_this_ceremony(ctx: Context, name: str) -> bool:
    return any(
        e.action == GENERATING and isinstance(e.data, dict) and e.data.get("name") == name
        for e in ctx.workspace.events()
    )


@step
def generate(ctx: Context) -> StepResult:
    """Phase 02: one key per [[keys]] entry of the plan, inside the HSM."""
    from ceremony.evidence.records import KeyRecord

    ws, facts, items = ctx.workspace, [], []
    with ctx.hsm() as session:
        info = session.describe().to_dict()
        hsm = {"library": info["library"], "token": info["token"]}
        for key in ctx.plan.keys:
            record_name = f"keys/{key.name}.json"
            found = session.find_key(key.name)
            if ws.exists(record_name):
                if found is None:
                    raise RefusedError(
                        f"{record_name} exists but the token {ctx.plan.hsm.token!r} has no key "
                        f"{key.name!r}.",
                        "Check that this is the ceremony's token; the key must not be made twice.",
                    )
                record = KeyRecord.from_json(ws.path(record_name).read_bytes(), record_name)
                how = "already generated"
            else:
                if found is None:
                    ctx.record(GENERATING, {"name": key.name, "spec": key.spec.describe()})
                    found = session.generate(key.spec, key.name)
                    how = "generated"
                elif _started_by_this_ceremony(ctx, key.name) and found.spec == key.spec:
                    how = "adopted after an interruption"
                else:
                    raise RefusedError(
                        f"The token already holds a key labelled {key.name!r} that this "
                        "ceremony did not generate.",
                        "Never reuse a key of unknown origin: remove it with the token's security "
                        "officer, or rename the key in a new plan.",
                    )
                record = found.to_evidence(key.name, hsm)
                public_sha = record.public_key_sha256
                if found.public_key_pem:
                    ws.write_new(f"keys/{key.name}.pub.pem", found.public_key_pem.encode())
                ws.write_new(record_name, record.to_json())
                action = GENERATED if how == "generated" else ADOPTED
                ctx.record(action, {"name": key.name, "id": found.id_hex, "public": public_sha})
            facts.append(
                (f"key {key.name}", f"{key.spec.describe()}, CKA_ID {record.id_hex}, {how}")
            )
            if record.public_key_sha256:
                label = f"public-key fingerprint of {key.name}"
                items.append(CheckpointItem(label, record.public_key_sha256))
            else:
                digest = sha256_hex(ws.path(record_name).read_bytes())
                label = f"key record of {key.name} (AES: no public half)"
                items.append(CheckpointItem(label, digest))
    return StepResult("Keys generated in the HSM", tuple(facts), tuple(items))
