"""steps.evidence: phase 05 — seal the workspace into signed evidence and verify the archive.

Signs with the people present (those whose PIN the runner passed in), refuses to seal without the
quorum, and records what happens after the seal outside the sealed files. Never sees a PIN.
"""

from __future__ import annotations

import tomllib
from typing import Any

from ceremony.checkpoint import CheckpointItem
from ceremony.errors import RefusedError
from ceremony.evidence import layout
from ceremony.ledger import OUTPUTS_DECLARED, SEALED
from ceremony.steps.context import Context, StepResult, step

SEALING = "sealing"
SEAL_OUTPUTS = (f"{layout.EVIDENCE_DIR}/", layout.STAGING_DIR + "/", layout.ARCHIVE_NAME)


@step
def evidence(ctx: Context) -> StepResult:
    """Phase 05: statement, signatures by quorum, report and archive, verified."""
    from ceremony.evidence import build_evidence
    from ceremony.signer_check import signer_state

    ws, plan = ctx.workspace, ctx.plan
    people, quorum = plan.to_people()
    signers = []
    if not ws.sealed:  # a rerun after the seal only re-verifies: nobody signs again
        states = [signer_state(p) for p in plan.people]
        signing = [(p, s.signer) for p, s in zip(people, states, strict=True) if s.signer]
        absent = {s.name: s.reason for s in states if s.signer is None}
        result = quorum.evaluate(people, [p.key_id for p, _ in signing])
        if not result.met:
            why = "; ".join(f"{name}: {reason}" for name, reason in absent.items())
            raise RefusedError(
                f"Cannot seal the evidence: {result.describe()}; not signing: {why or 'nobody'}.",
                "Every signature the plan's quorum names must be given: bring the missing "
                "people and their tokens or key files, then rerun phase 05 (nothing has been "
                "sealed yet).",
            )
        ctx.record(SEALING, {"signers": [p.name for p, _ in signing], "absent": absent})
        # Recorded in the transcript that is about to be sealed, so an interrupted seal's
        # outputs are known as such and made again, never adopted.
        ctx.record(OUTPUTS_DECLARED, {"paths": list(SEAL_OUTPUTS)})
        signers = [s for _, s in signing]
    plan_data: dict[str, Any] = tomllib.loads(ws.path("plan.toml").read_text(encoding="utf-8"))
    sealed = build_evidence(ws.root, people, quorum, signers, plan=plan_data)
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
            ("quorum", f"{quorum.describe()} required; signed by {', '.join(sealed.signed_by)}"),
            ("verification", "verified" if report.verified else str(report.first_failure)),
        ),
        (
            CheckpointItem(
                f"archive fingerprint ({sealed.archive_path.name})", sealed.archive_sha256
            ),
        ),
    )
