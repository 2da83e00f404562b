"""evidence.verify: check a sealed archive or workspace offline, and say exactly what was checked.

Recomputes digests, the transcript chain, every DSSE signature and the quorum, and checks each
.byok against the KEK and each import against the HSM public key. No network, no HSM, no writes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from securesystemslib.dsse import Envelope

from ceremony.canonical import sha256_hex
from ceremony.errors import CeremonyError, UsageError, VerificationError
from ceremony.evidence import layout
from ceremony.evidence.anchors import Anchors
from ceremony.evidence.archive import archive_mtime, parse_archive
from ceremony.evidence.chain import planned_keys, story_gaps
from ceremony.evidence.facts import (
    CeremonyFacts,
    KeyFacts,
    public_key_sha256,
    read_facts,
    sides,
    software_disagreements,
)
from ceremony.evidence.predicate import SealedPredicate
from ceremony.evidence.records import KekRecord
from ceremony.evidence.roster import PLAN_FILE, checkpoint_problem, read_roster
from ceremony.evidence.statement import (
    PAYLOAD_TYPE,
    Subject,
    parse_envelope,
    parse_statement,
    sha256sums,
)
from ceremony.fingerprint import Fingerprint, fingerprint_public_key
from ceremony.people import Person
from ceremony.strictjson import strict_loads
from ceremony.terminal import escape
from ceremony.workspace import COMPLETED

_KID = re.compile(r"^https://[^/\s]+/keys/[A-Za-z0-9-]+/[A-Za-z0-9]+$")
_CURVES = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "P-256K": ec.SECP256K1,
}
_PROOF_HASHES = {
    "PS256": hashes.SHA256,
    "RS256": hashes.SHA256,
    "ES256": hashes.SHA256,
    "ES256K": hashes.SHA256,
    "PS384": hashes.SHA384,
    "RS384": hashes.SHA384,
    "ES384": hashes.SHA384,
    "PS512": hashes.SHA512,
    "RS512": hashes.SHA512,
    "ES512": hashes.SHA512,
}


@dataclass(frozen=True)
class Check:
    """One line of the verification table. A flag is for the auditor's attention: it holds, but
    is not as it should be (two sides that ran different software); it does not fail the archive."""

    check: str
    subject: str
    ok: bool
    detail: str
    flag: bool = False

    @property
    def result(self) -> str:
        return "FAILED" if not self.ok else "FLAG" if self.flag else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject,
            "ok": self.ok,
            "flag": self.flag,
            "detail": self.detail,
        }


@dataclass
class VerifyReport:
    """Every check made, in order; the first failing one names what is wrong."""

    path: str
    checks: list[Check] = field(default_factory=list)
    archive_sha256: str | None = None
    signed_key_ids: list[str] = field(default_factory=list)
    signed_by: list[str] = field(default_factory=list)
    software: list[dict[str, Any]] = field(default_factory=list)  # each side's, in full
    mtime: int = 0
    rehearsal: bool = False
    exceptions: list[str] = field(default_factory=list)
    rests_on: str = ""

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def first_failure(self) -> str | None:
        bad = next((c for c in self.checks if not c.ok), None)
        return f"{bad.subject}: {bad.detail}" if bad else None

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def flags(self) -> list[str]:
        return [c.detail for c in self.checks if c.ok and c.flag]

    def add(self, check: str, subject: str, ok: bool, detail: str, *, flag: bool = False) -> bool:
        self.checks.append(Check(check, subject, ok, detail, flag))
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verified": self.verified,
            "first_failure": self.first_failure,
            "archive_sha256": self.archive_sha256,
            "signed_by": self.signed_by,
            "rehearsal": self.rehearsal,
            "exceptions": self.exceptions,
            "rests_on": self.rests_on,
            "flags": self.flags,
            "software": self.software,
            "checks": [c.to_dict() for c in self.checks],
        }

    def table(self) -> str:
        """A plain-text table for the terminal and the notebook; everything the archive said is
        escaped, so no member name or field can move the cursor or repaint a line."""
        rows = [(c.result, c.check, escape(c.subject), escape(c.detail)) for c in self.checks]
        width = min(max(max((len(r[2]) for r in rows), default=7), 7), 48)
        lines = [f"{'result':6}  {'check':10}  {'subject':{width}}  detail"]
        for result, check, subject, detail in rows:
            lines.append(f"{result:6}  {check:10}  {subject:{width}}  {detail}")
        return "\n".join(lines)


def verify_path(
    path: Path | str,
    *,
    anchors: Anchors | None = None,
    trusted_keys: Iterable[bytes | str] = (),
    production: bool = False,
) -> VerifyReport:
    """Verify an archive (.tar) or a sealed workspace directory.

    Only signatures by the keys the sealed plan names count. `anchors` (the reviewed plan,
    signer keys, the paper record) and `trusted_keys` (PEM public keys obtained apart) narrow
    that further and are checked too. `production` fails a rehearsal or any recorded exception.
    UsageError when the input is unusable (missing, not a tar)."""
    anchors = anchors or Anchors()
    if trusted_keys:
        extra = tuple(fingerprint_public_key(k).hex for k in trusted_keys)
        anchors = replace(anchors, signer_keys=anchors.signer_keys + extra)
    source = Path(path)
    report = VerifyReport(str(source), rests_on=anchors.rests_on())
    if source.is_dir():
        files = {name: (source / name).read_bytes() for name in layout.workspace_files(source)}
        report.add("files", source.name or str(source), True, f"{len(files)} files read")
    elif source.exists():
        try:
            raw = source.read_bytes()
        except OSError as exc:
            raise UsageError(f"{source} cannot be read ({exc.strerror}).", "") from exc
        report.archive_sha256 = hashlib.sha256(raw).hexdigest()
        try:
            files = parse_archive(raw, source.name)
        except VerificationError as exc:
            report.add("archive", source.name, False, exc.message)
            return report
        report.mtime = archive_mtime(raw)
        report.add("archive", source.name, True, f"{len(files)} members, canonical form")
    else:
        raise UsageError(f"{source} does not exist.", "Give the archive or the workspace path.")
    _verify_files(files, report, anchors)
    if production:
        _require_production(report)
    return report


def _verify_files(files: Mapping[str, bytes], report: VerifyReport, anchors: Anchors) -> None:
    sealed = _read_envelope(files, report)
    if sealed is None:
        return
    envelope, statement, predicate = sealed
    report.rehearsal, report.exceptions = predicate.rehearsal, list(predicate.exceptions)
    if report.archive_sha256 and report.mtime != predicate.mtime:
        report.add("archive", "archive times", False, "members are not dated at the sealed time")
    report.mtime = predicate.mtime
    _verify_subjects(files, statement, predicate, report)
    facts = read_facts(files)
    bound = _verify_roster(files, facts, predicate, report)
    held = (files.get(PLAN_FILE), predicate.people, report.archive_sha256, facts.events)
    for subject, ok, detail in anchors.check(*held):
        report.add("anchor", subject, ok, detail)
    _verify_signatures(envelope, predicate, bound, anchors, report)
    _verify_signer_files(files, predicate, report)
    if files.get(layout.STATEMENT) != envelope.payload:
        report.add("statement", layout.STATEMENT, False, "differs from the signed payload")
    else:
        report.add("statement", layout.STATEMENT, True, "equals the signed payload")
    for name, problem in facts.problems.items():
        report.add("record", name, False, problem)
    _verify_transcript(facts, predicate, report)
    _verify_software(facts, report)
    kek_public = _verify_kek(facts, report)
    for key in facts.keys:
        _verify_key(key, facts.kek, kek_public, report)
    _verify_chains(files, facts, report)


def _verify_chains(files: Mapping[str, bytes], facts: CeremonyFacts, report: VerifyReport) -> None:
    """Every planned key (every key record, where no plan was sealed) has its whole story in the
    transcript, told about the bytes the archive holds; a key record nobody planned fails."""
    if layout.TRANSCRIPT in facts.problems:
        return  # already reported, naming the line
    recorded = {key.name: key.record.kty for key in facts.keys if key.record is not None}
    planned = planned_keys(files)
    for name in sorted(set(recorded) - set(planned or recorded)):
        report.add("chain", f"keys/{name}", False, "a key record for a key the plan does not name")
    for name, kty in sorted((planned or recorded).items()):
        gaps = story_gaps(name, kty, facts.events, files)
        whole = "generated, wrapped, imported and proved, each event naming these bytes"
        report.add("chain", f"keys/{name}", not gaps, "; ".join(gaps) or whole)


def _read_envelope(
    files: Mapping[str, bytes], report: VerifyReport
) -> tuple[Envelope, dict[str, Any], SealedPredicate] | None:
    if layout.ENVELOPE not in files:
        report.add("envelope", layout.ENVELOPE, False, "missing: the evidence was never sealed")
        return None
    try:
        envelope = parse_envelope(files[layout.ENVELOPE], layout.ENVELOPE)
        if envelope.payload_type != PAYLOAD_TYPE:
            raise VerificationError(f"payload type is {envelope.payload_type!r}", "")
        statement = parse_statement(envelope.payload, layout.ENVELOPE)
        predicate = SealedPredicate.from_dict(statement["predicate"])
    except CeremonyError as exc:
        report.add("envelope", layout.ENVELOPE, False, exc.message)
        return None
    report.add("envelope", layout.ENVELOPE, True, f"DSSE, {len(envelope.signatures)} signature(s)")
    return envelope, statement, predicate


def _verify_roster(
    files: Mapping[str, bytes],
    facts: CeremonyFacts,
    predicate: SealedPredicate,
    report: VerifyReport,
) -> set[str]:
    """The people the statement names must be the plan's, with the plan's keys, as checkpoint 00
    showed them; returns the key fingerprints that may sign."""
    try:
        roster = read_roster(files)
    except VerificationError as exc:
        report.add("roster", PLAN_FILE, False, exc.message)
        return set()
    problem = checkpoint_problem(roster, facts.events)
    report.add(
        "roster", PLAN_FILE, problem is None, problem or "plan and keys as checkpoint 00 showed"
    )
    bound, problems = roster.compare(predicate.people, predicate.quorum)
    for subject, problem in problems:
        report.add("roster", subject, False, problem)
    return bound


def _why_not_counted(person: Person, bound: set[str], anchors: Anchors) -> str | None:
    """Why a valid signature does not count, or None: only the plan's keys count, narrowed by
    every key source the auditor gave apart."""
    key = f"{person.name}'s key {person.fingerprint.short[:19]} …"
    if person.key_id not in bound:
        return f"{key} is not the key the plan names for {person.name}"
    reviewed = anchors.reviewed_plan
    if reviewed and reviewed.keys.get(person.name) != person.key_id:
        return f"{key} is not the key the reviewed plan names for {person.name}"
    if anchors.signer_keys and person.key_id not in anchors.signer_keys:
        return f"{key} is not among the signer keys given apart"
    return None


def _verify_signatures(
    envelope: Envelope,
    predicate: SealedPredicate,
    bound: set[str],
    anchors: Anchors,
    report: VerifyReport,
) -> None:
    by_key = {p.key_id: p for p in predicate.people}
    pae = envelope.pae()
    valid: list[Person] = []
    for signature in envelope.signatures.values():
        person = by_key.get(signature.keyid)
        if person is None:
            report.add(
                "signature",
                layout.ENVELOPE,
                False,
                f"signature by key {signature.keyid[:16]}… of nobody in the statement",
            )
            continue
        try:
            person.key.verify_signature(signature, pae)
        except Exception:  # securesystemslib raises its own VerificationError subclasses
            report.add("signature", layout.ENVELOPE, False, f"{person.name}'s signature is invalid")
            continue
        refused = _why_not_counted(person, bound, anchors)
        if refused:
            report.add("signature", layout.ENVELOPE, False, f"{refused}: it does not count")
            continue
        valid.append(person)
        report.add(
            "signature",
            layout.ENVELOPE,
            True,
            f"{person.name} ({person.role}), key {person.fingerprint.short[:19]} …",
        )
    report.signed_key_ids = [p.key_id for p in valid]
    report.signed_by = [p.name for p in valid]
    result = predicate.quorum.evaluate(predicate.people, report.signed_key_ids)
    report.add("quorum", predicate.quorum.describe(), result.met, result.describe())


def _verify_signer_files(
    files: Mapping[str, bytes], predicate: SealedPredicate, report: VerifyReport
) -> None:
    for person in predicate.people:
        name = layout.signer_key_path(person.file_stem)
        pem = files.get(name)
        if pem is None:
            report.add("signer-key", name, False, f"{person.name}'s public key file is missing")
        elif public_key_sha256(pem) != person.key_id:
            report.add("signer-key", name, False, f"not the public key {person.name} signed with")
        else:
            report.add("signer-key", name, True, f"{person.name}: {person.fingerprint.short}")


def _require_production(report: VerifyReport) -> None:
    """--production: a rehearsal, or any recorded exception, is not a production ceremony."""
    why = (["a rehearsal"] if report.rehearsal else []) + (
        [f"{len(report.exceptions)} recorded exception(s)"] if report.exceptions else []
    )
    report.add(
        "production",
        "--production",
        not why,
        " and ".join(why) + " in the evidence" if why else "no rehearsal, no exceptions",
    )


def _verify_subjects(
    files: Mapping[str, bytes],
    statement: dict[str, Any],
    predicate: SealedPredicate,
    report: VerifyReport,
) -> None:
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    for name, expected in sorted(subjects.items()):
        data = files.get(name)
        if data is None:
            report.add("digest", name, False, "listed in the statement but missing")
        elif sha256_hex(data) != expected:
            report.add("digest", name, False, "SHA-256 differs from the signed statement")
        else:
            report.add("digest", name, True, f"sha256 {expected[:16]}…")
    expected_outputs = {layout.SUMS, layout.STATEMENT, layout.ENVELOPE} | {
        layout.signer_key_path(p.file_stem) for p in predicate.people
    }
    for name in sorted(set(files) - set(subjects) - expected_outputs):
        report.add("digest", name, False, "not covered by the signed statement (added)")
    sums = sha256sums(Subject(name, digest) for name, digest in subjects.items())
    ok = files.get(layout.SUMS) == sums
    report.add(
        "manifest", layout.SUMS, ok, "matches the statement" if ok else "differs from the statement"
    )


def _verify_transcript(
    facts: CeremonyFacts, predicate: SealedPredicate, report: VerifyReport
) -> None:
    if layout.TRANSCRIPT in facts.problems:
        return  # already reported, naming the line
    recorded = predicate.transcript_head
    if facts.transcript_head != recorded:
        report.add("transcript", layout.TRANSCRIPT, False, "its head differs from the signed head")
    else:
        detail = f"{facts.transcript_events} events chained, head {str(recorded)[:16]}…"
        report.add("transcript", layout.TRANSCRIPT, True, detail)
    for event in facts.events:
        if event.action == COMPLETED:
            head = Fingerprint(bytes.fromhex(event.line_sha256))
            shown = f"head {head.short[:19]} … {' '.join(head.word_list[:4])} …"
            report.add("checkpoint", f"phase {event.phase}", True, f"{shown}: compare the paper")


def _verify_software(facts: CeremonyFacts, report: VerifyReport) -> None:
    """Show the software each side ran; flag sides that ran different software, or recorded none.

    What a side recorded is its own account (signed with the rest), not proof: the auditor compares
    the identities with those written down when the software was carried to each machine."""
    found = sides(facts)
    for side in found:
        report.software.append(
            {"record": side.record_name, "host": side.host, "with_hsm": side.with_hsm,
             "software": side.software.to_dict() if side.software else None}
        )  # fmt: skip
        if side.software is not None:
            summary = _printable(f"{side.host}: {side.software.summary()}")
            report.add("software", side.record_name, True, summary)
    for line in software_disagreements(found):
        report.add("software", "sides", True, _printable(line), flag=True)


def _printable(text: str) -> str:
    """Text from the archive, one table line: control characters shown as '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _verify_kek(facts: CeremonyFacts, report: VerifyReport) -> rsa.RSAPublicKey | None:
    """Check kek.json against kek.pem; return the KEK public key when the keys can use it."""
    kek = facts.kek
    if kek is None:
        if facts.keys:
            report.add("kek", "kek.json", False, "missing although keys were wrapped")
        return None
    problems = []
    loaded = _load_public(facts.kek_pem)
    key = loaded[0] if loaded else None
    if loaded is None or sha256_hex(loaded[1]) != kek.public_key_sha256:
        problems.append("kek.pem's fingerprint differs from kek.json")
    if kek.out_of_band_sha256 and kek.out_of_band_sha256.lower() != kek.public_key_sha256:
        problems.append("the out-of-band fingerprint differs")
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != kek.size:
        problems.append(f"kek.pem is not an RSA-{kek.size} public key")
    if kek.kty != "RSA-HSM" or kek.key_ops != ["import"] or not _KID.match(kek.kid):
        problems.append("kek.json is not an RSA-HSM import-only key with a versioned kid")
    ok = not problems
    report.add("kek", "kek.json", ok, "; ".join(problems) or f"RSA-{kek.size}, {kek.kid}")
    return key if isinstance(key, rsa.RSAPublicKey) else None


def _verify_key(
    key: KeyFacts, kek: KekRecord | None, kek_public: rsa.RSAPublicKey | None, report: VerifyReport
) -> None:
    base = f"keys/{key.name}"
    record = key.record
    if record is None:
        return
    public = None
    if record.kty != "oct-HSM":
        loaded = _load_public(key.public_pem)
        fingerprint = sha256_hex(loaded[1]) if loaded else None
        if loaded is None or fingerprint != record.public_key_sha256:
            report.add("key", f"{base}.pub.pem", False, "missing or not the key in the record")
        else:
            public = loaded[0]
            spec_ok = _matches_spec(public, record.kty, record.size, record.curve)
            detail = f"{record.kty} {record.size or record.curve}, {fingerprint[:16]}…"
            report.add("key", f"{base}.pub.pem", spec_ok, detail if spec_ok else "wrong key type")
    if key.byok is None:
        report.add("byok", f"{base}.byok", False, "missing")
    elif kek is None or kek_public is None:
        report.add("byok", f"{base}.byok", False, "no usable KEK to check it against")
    else:
        checked = _check_byok(key.byok, record.kty, record.size, kek.kid, kek_public)
        report.add("byok", f"{base}.byok", *checked)
    if key.imported is not None:
        report.add("import", f"{base}.import.json", *_check_import(key, public))


def _load_public(pem: bytes | None) -> tuple[Any, bytes] | None:
    """A PEM public key and its DER SubjectPublicKeyInfo, or None when absent or unreadable."""
    if not pem:
        return None
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError):
        return None
    return key, key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _check_byok(
    content: bytes, kty: str, size: int | None, kid_expected: str, kek: rsa.RSAPublicKey
) -> tuple[bool, str]:
    try:
        package = strict_loads(content)
        header = package["header"]
        kid, ciphertext = header["kid"], package["ciphertext"]
        fields_ok = (
            package["schema_version"] == "1.0.0"
            and header["alg"] == "dir"
            and header["enc"] == "CKM_RSA_AES_KEY_WRAP"
            and isinstance(package["generator"], str)
            and isinstance(ciphertext, str)
            and "=" not in ciphertext
        )
        blob = base64.urlsafe_b64decode(ciphertext + "=" * (-len(ciphertext) % 4))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return False, "not a .byok package (JSON fields or base64url ciphertext)"
    if not fields_ok:
        return False, "schema_version, alg, enc or generator is not as Azure specifies"
    if kid != kid_expected:
        return False, f"wrapped for {kid}, not the KEK {kid_expected}"
    block = kek.key_size // 8
    tail = len(blob) - block
    if tail < 16 or tail % 8:
        return False, f"{len(blob)} bytes cannot be a {block}-byte RSA block and an AES-KWP blob"
    if int.from_bytes(blob[:block], "big") >= kek.public_numbers().n:
        return False, "the RSA block is not below the KEK modulus"
    if kty == "oct-HSM" and size and tail != size // 8 + 8:
        return False, f"an AES-{size} key wraps to {size // 8 + 8} bytes, not {tail}"
    return True, f"kid = KEK, RSA block {block} bytes, wrapped key {tail} bytes"


def _check_import(key: KeyFacts, public: Any) -> tuple[bool, str]:
    imported, record = key.imported, key.record
    assert imported is not None and record is not None
    if imported.name != key.name:
        return False, f"records key {imported.name!r}, not {key.name!r}"
    if key.byok is None or imported.byok_sha256 != sha256_hex(key.byok):
        return False, "imported a different .byok than the one in the evidence"
    if imported.kty.removesuffix("-HSM") != record.kty.removesuffix("-HSM"):
        return False, f"the vault holds a {imported.kty} key, the HSM made {record.kty}"
    proof = imported.proof
    if record.kty == "oct-HSM":
        return _check_aes_proof(key, proof, imported.kid)
    try:
        equal = public is not None and _jwk_equals(imported.public_key_jwk or {}, public)
    except (KeyError, ValueError, TypeError, AttributeError):
        return False, "the vault's public JWK cannot be read"
    if not equal:
        return False, "the vault's public key differs from the HSM's"
    if proof.get("method") == "none":
        return True, f"{imported.kid}: public key equals the HSM's; {proof.get('reason')}"
    if proof.get("method") == "decrypt":
        opened = _decrypt_proof_holds(proof)
        detail = f"{imported.kid}: public key equals the HSM's, decrypt proof"
        return (True, detail) if opened else (False, "the decrypt proof does not hold")
    if not _proof_verifies(proof, public):
        return False, "the proof-of-possession signature does not verify with the HSM key"
    return True, f"{imported.kid}: public key equals the HSM's, {proof.get('algorithm')} proof"


def _check_aes_proof(key: KeyFacts, proof: dict[str, Any], kid: str) -> tuple[bool, str]:
    """An AES key has no public half: the possession proof is the only link to the HSM's key.

    "unwrap": the vault unwrapped the challenge the HSM wrapped offline (phase 03), and what it
    returned hashes to the digest in that record."""
    method = proof.get("method")
    if method != "unwrap":
        return False, f"no possession proof for an AES key ({proof.get('reason', method)})"
    challenge = key.challenge
    if challenge is None:
        return False, f"the unwrap proof needs keys/{key.name}.challenge.json, which is missing"
    asked = (proof.get("algorithm"), proof.get("wrapped"), proof.get("challenge_sha256"))
    made = (challenge.algorithm, challenge.wrapped, challenge.challenge_sha256)
    if challenge.name != key.name or asked != made:
        return False, "the vault unwrapped a challenge other than the one the HSM wrapped"
    try:
        answer = hashlib.sha256(bytes.fromhex(proof["unwrapped"])).hexdigest()
    except (KeyError, ValueError, TypeError):
        return False, "the unwrap proof has no readable answer"
    if answer != challenge.challenge_sha256:
        return False, "what the vault unwrapped is not the HSM's challenge"
    return True, f"{kid}, vault unwrapped the HSM's {challenge.algorithm} challenge"


def _jwk_equals(jwk: dict[str, Any], public: Any) -> bool:
    """Whether the vault's JWK holds the same public key as the HSM's (numbers compared)."""

    def number(name: str) -> int:
        text = jwk[name]
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    numbers = public.public_numbers()
    if isinstance(public, rsa.RSAPublicKey):
        return jwk["kty"].startswith("RSA") and (number("n"), number("e")) == (
            numbers.n,
            numbers.e,
        )
    curve = _CURVES[jwk["crv"]]
    return (
        jwk["kty"].startswith("EC")
        and isinstance(public.curve, curve)
        and (number("x"), number("y")) == (numbers.x, numbers.y)
    )


def _decrypt_proof_holds(proof: dict[str, Any]) -> bool:
    """The vault decrypted SHA-256(challenge), sealed with the HSM public key: equality only."""
    try:
        expected = hashlib.sha256(bytes.fromhex(proof["challenge"])).hexdigest()
        return proof["response"].lower() == expected
    except (KeyError, ValueError, TypeError, AttributeError):
        return False


def _proof_verifies(proof: dict[str, Any], public: Any) -> bool:
    try:
        algorithm = _PROOF_HASHES[proof["algorithm"]]()
        digest = hashes.Hash(algorithm)
        digest.update(bytes.fromhex(proof["challenge"]))
        prehashed = digest.finalize()
        text = proof["signature"]
        signature = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        if isinstance(public, rsa.RSAPublicKey):
            pad = (
                padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO)
                if proof["algorithm"].startswith("PS")
                else padding.PKCS1v15()
            )
            public.verify(signature, prehashed, pad, utils.Prehashed(algorithm))
        else:
            half = len(signature) // 2
            der = utils.encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            public.verify(der, prehashed, ec.ECDSA(utils.Prehashed(algorithm)))
    except (InvalidSignature, KeyError, ValueError, TypeError, binascii.Error):
        return False
    return proof.get("method") == "sign"


def _matches_spec(public: Any, kty: str, size: int | None, curve: str | None) -> bool:
    if kty == "RSA-HSM":
        return isinstance(public, rsa.RSAPublicKey) and public.key_size == size
    if kty == "EC-HSM":
        expected = _CURVES.get(curve or "")
        return isinstance(public, ec.EllipticCurvePublicKey) and (
            expected is not None and isinstance(public.curve, expected)
        )
    return False
