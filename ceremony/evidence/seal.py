"""evidence.seal: turn a finished workspace into signed evidence and the deterministic archive.

Refuses to seal secrets, damaged records, unknown signers or a quorum not met; writes nothing
until every check passed, never overwrites, and verifies the archive it wrote before returning.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.signer import Signer

from ceremony.canonical import sha256_hex
from ceremony.errors import CeremonyError, RefusedError, UsageError, VerificationError
from ceremony.evidence import layout
from ceremony.evidence.archive import write_archive
from ceremony.evidence.facts import CeremonyFacts, read_facts
from ceremony.evidence.roster import checkpoint_problem, read_roster
from ceremony.evidence.secrets import require_no_secrets, scan_files
from ceremony.evidence.statement import (
    PAYLOAD_TYPE,
    Subject,
    build_predicate,
    envelope_bytes,
    sha256sums,
    statement_bytes,
)
from ceremony.evidence.verify import VerifyReport, verify_path
from ceremony.files import read_regular
from ceremony.fingerprint import Fingerprint
from ceremony.people import Person, Quorum, check_people
from ceremony.pins import is_pin_variable
from ceremony.report import render_pdf, render_report
from ceremony.signers import load_signer


@dataclass(frozen=True)
class EvidenceResult:
    """What sealing produced. `fingerprint` (the archive's SHA-256) is the ceremony's final one."""

    archive_path: Path
    archive_sha256: str
    report_path: Path
    pdf_path: Path | None
    signed_by: tuple[str, ...]
    verification: VerifyReport
    # Path -> SHA-256 of everything sealing wrote: evidence/ and the archive.
    outputs: dict[str, str]

    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint(bytes.fromhex(self.archive_sha256))


def build_evidence(
    workspace: Path | str,
    people: Sequence[Person],
    quorum: Quorum,
    signers: Iterable[Signer] | None = None,
    ceremony_time: datetime | None = None,
    *,
    plan: Mapping[str, Any] | None = None,
    known_secrets: Iterable[bytes | str] = (),
    exceptions: Iterable[str] = (),
) -> EvidenceResult:
    """Seal `workspace`: report, statement, one DSSE signature per signer, archive.tar.

    `signers` defaults to every person with a signer reference (PINs from CEREMONY_PIN_<NAME>
    or a prompt). `ceremony_time` fixes the archive's mtimes (default: now, to the second).
    Any CEREMONY_PIN* value in the environment is added to `known_secrets` for the scan.
    Calling it again on a sealed workspace returns the existing, re-verified result."""
    root = Path(workspace)
    if not root.is_dir():
        raise UsageError(f"Workspace {root} is not a directory.", "Give the ceremony workspace.")
    archive = root / layout.ARCHIVE_NAME
    if archive.exists() or (root / layout.ENVELOPE).exists():
        return _resume(root, archive, people)
    if (root / layout.EVIDENCE_DIR).exists():
        raise UsageError(
            f"{root / layout.EVIDENCE_DIR} exists but holds no sealed evidence.",
            "Move it away (sealing writes it), then seal again.",
        )
    people = list(people)
    check_people(people)
    secrets = [*known_secrets, *_environment_pins()]
    files = _read_subjects(root, secrets)
    facts = read_facts(files)
    if facts.problems:
        path, problem = next(iter(facts.problems.items()))
        raise RefusedError(f"Refusing to seal: {problem}", f"Repair {path} first.")
    _require_planned(files, facts, people, quorum)

    moment = (ceremony_time or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    sealed_at = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    chosen = list(signers) if signers is not None else [load_signer(p) for p in people if p.signer]
    signing_people = _signing_people(people, chosen)
    result = quorum.evaluate(people, [p.key_id for p in signing_people])
    if not result.met:
        raise RefusedError(
            f"Refusing to seal: {result.describe()} among the signers present.",
            "Bring the missing signers (and their tokens or key files), then seal again.",
        )
    predicate = build_predicate(
        facts, people, quorum, sealed_at=sealed_at, plan=plan, exceptions=exceptions
    )
    digests = {name: sha256_hex(data) for name, data in files.items()}
    html = render_report(
        predicate, signing=[p.name for p in signing_people], files=digests
    ).encode()
    files[layout.REPORT_HTML] = html
    pdf = render_pdf(html)
    if pdf is not None:
        files[layout.REPORT_PDF] = pdf
    subjects = [Subject(name, sha256_hex(data)) for name, data in sorted(files.items())]
    payload = statement_bytes(subjects, predicate)
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    for person, signer in zip(signing_people, chosen, strict=True):
        _sign(envelope, person, signer)
    outputs = {
        layout.SUMS: sha256sums(subjects),
        layout.STATEMENT: payload,
        layout.ENVELOPE: envelope_bytes(envelope),
        **{layout.signer_key_path(p.file_stem): p.public_key_pem.encode() for p in people},
    }
    require_no_secrets(scan_files(outputs, secrets))
    _write_evidence_dir(
        root, {**outputs, **{n: files[n] for n in layout.SUBJECT_OUTPUTS if n in files}}
    )
    data = write_archive({**files, **outputs}, int(moment.timestamp()), archive)
    return _result(root, archive, sha256_hex(data), [p.name for p in signing_people])


def _resume(root: Path, archive: Path, people: Sequence[Person]) -> EvidenceResult:
    """A sealed workspace: rebuild a missing archive from evidence/, then verify and report."""
    if not archive.exists():
        check = verify_path(root)
        if not check.verified:
            raise VerificationError(
                f"The workspace was sealed but no longer verifies: {check.first_failure}.",
                "Find out what changed after sealing; do not seal again over it.",
            )
        files = {name: (root / name).read_bytes() for name in layout.workspace_files(root)}
        write_archive(files, check.mtime, archive)
    check = verify_path(archive)
    names = [p.name for p in people if p.key_id in set(check.signed_key_ids)]
    return _result(root, archive, sha256_hex(archive.read_bytes()), names, check)


def _result(
    root: Path,
    archive: Path,
    digest: str,
    names: list[str],
    check: VerifyReport | None = None,
) -> EvidenceResult:
    check = check or verify_path(archive)
    if not check.verified:
        raise VerificationError(
            f"The archive just written does not verify: {check.first_failure}.",
            "This is a bug; keep the workspace and report it.",
        )
    pdf = root / layout.REPORT_PDF
    outputs = {
        name: sha256_hex(read_regular(root / name))
        for name in layout.workspace_files(root)
        if name.startswith(f"{layout.EVIDENCE_DIR}/")
    }
    return EvidenceResult(
        archive_path=archive,
        archive_sha256=digest,
        report_path=root / layout.REPORT_HTML,
        pdf_path=pdf if pdf.exists() else None,
        signed_by=tuple(names),
        verification=check,
        outputs={**outputs, layout.ARCHIVE_NAME: digest},
    )


def _read_subjects(root: Path, secrets: list[bytes | str]) -> dict[str, bytes]:
    """Every file of the workspace: each one is sealed, or sealing is refused naming it."""
    names = layout.workspace_files(root)
    hidden = [name for name in names if layout.is_hidden(name)]
    if hidden:
        raise RefusedError(
            f"Refusing to seal: {hidden[0]} is a hidden file, which no phase writes.",
            "Find out where it came from; evidence holds every file of the workspace or none.",
        )
    files = {name: read_regular(root / name) for name in names}
    require_no_secrets(scan_files(files, secrets))
    return files


def _require_planned(
    files: Mapping[str, bytes], facts: CeremonyFacts, people: list[Person], quorum: Quorum
) -> None:
    """Only the plan's people, with the keys checkpoint 00 showed, may seal (the verifier counts
    no other signature), under the plan's quorum."""
    try:
        roster = read_roster(files)
    except VerificationError as exc:
        raise RefusedError(f"Refusing to seal: {exc.message}.", exc.remedy) from None
    problem = checkpoint_problem(roster, facts.events)
    if problem:
        raise RefusedError(f"Refusing to seal: {problem}.", "Seal the workspace the runner made.")
    _, problems = roster.compare(people, quorum)
    if problems:
        raise RefusedError(
            f"Refusing to seal: {problems[0][1]}.",
            "Seal with the people, public keys and quorum the plan names.",
        )


def _signing_people(people: list[Person], signers: list[Signer]) -> list[Person]:
    by_key = {p.key_id: p for p in people}
    chosen = []
    for signer in signers:
        person = by_key.get(signer.public_key.keyid)
        if person is None:
            raise RefusedError(
                f"Refusing to seal: signing key {signer.public_key.keyid[:16]}… is not the key "
                "of anyone in the plan.",
                "Sign only with the keys listed for the ceremony's people.",
            )
        chosen.append(person)
    return chosen


def _sign(envelope: Envelope, person: Person, signer: Signer) -> None:
    """One signature; a token or key that fails becomes an error naming the person."""
    try:
        envelope.sign(signer)
    except CeremonyError:
        raise
    except Exception as exc:  # PKCS#11 and key libraries raise many kinds; none may leak a trace
        raise RefusedError(
            f"{person.name} could not sign the evidence ({type(exc).__name__}).",
            f"Check their token or key file and the PIN in {person.pin_env_var}, then seal again.",
        ) from exc


def _environment_pins() -> list[str]:
    return [v for k, v in os.environ.items() if is_pin_variable(k) and v]


def _write_evidence_dir(root: Path, outputs: Mapping[str, bytes]) -> None:
    """Write evidence/ through a hidden staging directory renamed into place, so a crash leaves
    either no evidence/ or a complete one."""
    staging = root / layout.STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    for name, data in outputs.items():
        target = staging / Path(name).relative_to(layout.EVIDENCE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    final = root / layout.EVIDENCE_DIR
    if final.exists():
        raise UsageError(
            f"{final} exists already.", "Move the old evidence directory away and seal again."
        )
    staging.rename(final)
