"""steps.evidence: phase 05 — seal the workspace into signed evidence and verify the archive.

Signs with the people present (those whose PIN the runner passed in), refuses to seal without the
quorum, and records what happens after the seal outside the sealed files. Never sees a PIN.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from ceremony.checkpoint import CheckpointItem
from ceremony.errors import RefusedError
from ceremony.evidence import layout
from ceremony.ledger import OUTPUTS_DECLARED, SEALED
from ceremony.plan import PersonPlan
from ceremony.steps.context import Context, StepResult, step

SEALING = "sealing"
SEAL_OUTPUTS = (f"{layout.EVIDENCE_DIR}/", layout.STAGING_DIR + "/", layout.ARCHIVE_NAME)


def present(person: PersonPlan) -> bool:
    """Whether a person signs now: their PIN was handed in, or their key file needs none."""
    if os.environ.get(person.pin_variable):
        return True
    if person.signer.startswith("file:"):
        try:
            with open(person.signer[5:], "rb") as handle:
                return b"ENCRYPTED" not in handle.read()
        except OSError:
            return False
    return False


@step
def evidence(ctx: Context) -> StepResult:
    """Phase 05: statement, signatures by quorum, report and archive, verified."""
    from ceremony.evidence import build_evidence
    from ceremony.signers import load_signer

    ws, plan = ctx.workspace, ctx.plan
    people, quorum = plan.to_people()
    signing = [p for p, planned in zip(people, plan.people, strict=True) if present(planned)]
    absent = [p.name for p in plan.people if not present(p)]
    if not ws.sealed:
        result = quorum.evaluate(people, [p.key_id for p in signing])
        if not result.met:
            raise RefusedError(
                f"Cannot seal the evidence: {result.describe()}; not signing: "
                f"{', '.join(absent) or 'nobody'}.",
                "Every signature the plan's quorum names must be given: bring the missing "
                "people and their tokens, then rerun phase 05 (nothing has been sealed yet).",
            )
        ctx.record(SEALING, {"signers": [p.name for p in signing], "absent": absent})
        # Recorded in the transcript that is about to be sealed, so an interrupted seal's
        # outputs are known as such and made again, never adopted.
        ctx.record(OUTPUTS_DECLARED, {"paths": list(SEAL_OUTPUTS)})
    plan_data: dict[str, Any] = tomllib.loads(ws.path("plan.toml").read_text(encoding="utf-8"))
    sealed = build_evidence(
        ws.root, people, quorum, [load_signer(p) for p in signing], plan=plan_data
    )
    report = sealed.verification
    ctx.record(
        SEALED,
        {
            "archive": sealed.archive_path.name,
            "archive_sha256": sealed.archive_sha256,
            "signed_by": list(sealed.signed_by),
            "verified": bool(report.verified),
            "files": sealed.outputs,
        },
    )
    return StepResult(
        "Evidence sealed",
        (
            ("archive", str(sealed.archive_path)),
            ("report", str(sealed.report_path)),
            ("signed by", ", ".join(sealed.signed_by)),
            ("verification", "verified" if report.verified else str(report.first_failure)),
        ),
        (
            CheckpointItem(
                f"{sealed.archive_path.name} (the evidence archive)", sealed.archive_sha256
            ),
        ),
    )
