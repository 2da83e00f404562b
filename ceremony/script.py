"""script: the printed ceremony script, made from the reviewed plan before the day.

In the spirit of the root KSK ceremony scripts: roles and names, each phase's numbered steps with a
box to tick and initials, the values known in advance (hex, words, QR), a line per checkpoint for
the head the witnesses write down, a page for exceptions and a signature page. Reads the plan only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ceremony.checkpoint import CHALLENGE_WORDS
from ceremony.files import write_new
from ceremony.fingerprint import fingerprint_public_key
from ceremony.phases import PHASES, SIDES
from ceremony.plan import Plan, load_plan
from ceremony.report import environment, fingerprint_view, render_pdf

SCRIPT_HTML = "ceremony-script.html"
SCRIPT_PDF = "ceremony-script.pdf"
EXCEPTION_ROWS = 12

# Each phase's steps as the people in the room carry them out; {plan} and {workspace} are filled in.
STEPS: dict[str, tuple[str, ...]] = {
    "00": (
        "Administrator: on each machine, check that sha256sum {plan} equals the plan SHA-256 "
        "printed under 'Values known in advance'.",
        "Run ceremony run {plan} --workspace {workspace} --phases 00-01 on the online machine.",
        "Witnesses: compare the plan SHA-256 and every signing-key fingerprint on the screen with "
        "this script.",
        "Write the transcript head's first words on the checkpoint line; the operator types them "
        "and names the witnesses who agree.",
    ),
    "01": (
        "The KEK is fetched from the vault; the screen shows its fingerprint.",
        "Witnesses: compare it with the KEK fingerprint agreed out of band, printed in this "
        "script. Any difference: stop and record an exception.",
        "Write the transcript head's first words on the checkpoint line.",
    ),
    "02": (
        "Carry the workspace medium to the air-gapped machine; confirm it has no network.",
        "Custodians: enter the HSM PIN at the hidden prompt; run ceremony run {plan} "
        "--workspace {workspace} --phases 02-03.",
        "Each key is generated inside the HSM. Witnesses: compare each public-key fingerprint "
        "with the HSM's own display where it has one.",
        "Write the transcript head's first words on the checkpoint line.",
    ),
    "03": (
        "Each key is wrapped under the KEK into a .byok package (never in plaintext); each AES "
        "key also wraps a challenge for the proof in phase 04.",
        "Witnesses: compare the fingerprints shown with those of phase 02 and the KEK.",
        "Write the transcript head's first words on the checkpoint line; carry the medium back.",
    ),
    "04": (
        "On the online machine run ceremony run {plan} --workspace {workspace} --phases 04-05.",
        "Each key is imported; the vault proves it holds the HSM's key (equal public halves and a "
        "signature, or the unwrapped challenge for AES).",
        "Write the transcript head's first words on the checkpoint line.",
    ),
    "05": (
        "Each signer presents their token and enters their PIN at the hidden prompt.",
        "The evidence is sealed into archive.tar and verified.",
        "Witnesses: write down the archive's SHA-256 in full on the final line: it is the "
        "ceremony's last fingerprint, and the auditor's anchor.",
        "Copy archive.tar to two media; keep this script with them and give a copy to the auditor.",
    ),
}


@dataclass(frozen=True)
class ScriptFiles:
    """What write_script wrote."""

    html: Path
    pdf: Path | None


def render_script(plan: Plan, workspace: str = "/media/ceremony") -> str:
    """The ceremony script for plan as a printable HTML page."""
    people = [
        {"name": p.name, "role": p.role, "fp": fingerprint_view(key_fingerprint(p.public_key_pem))}
        for p in plan.people
    ]
    phases = [
        {
            "number": phase.number,
            "title": phase.title,
            "where": SIDES[phase.side],
            "purpose": phase.purpose,
            "steps": [
                s.format(plan=plan.path.name, workspace=workspace) for s in STEPS[phase.number]
            ],
            "final": phase is PHASES[-1],
        }
        for phase in PHASES
    ]
    return (
        environment()
        .get_template("script.html.j2")
        .render(
            plan=plan,
            plan_fp=fingerprint_view(plan.sha256),
            kek_fp=fingerprint_view(plan.kek.fingerprint),
            people=people,
            phases=phases,
            challenge_words=CHALLENGE_WORDS,
            exception_rows=range(EXCEPTION_ROWS),
        )
    )


def key_fingerprint(pem: str) -> str:
    """The one fingerprint of a public key: SHA-256 of its DER SubjectPublicKeyInfo, as hex."""
    return fingerprint_public_key(pem).hex


def write_script(plan_path: Path, out: Path) -> ScriptFiles:
    """Write the script (and its PDF where a renderer is installed) into out; never overwrites."""
    html = render_script(load_plan(plan_path)).encode()
    remedy = "A script is never overwritten; choose another --out folder."
    html_path = write_new(Path(out) / SCRIPT_HTML, html, remedy=remedy)
    pdf = render_pdf(html)
    pdf_path = write_new(Path(out) / SCRIPT_PDF, pdf, remedy=remedy) if pdf else None
    return ScriptFiles(html_path, pdf_path)
