"""evidence.statement: the in-toto Statement v1 describing a ceremony, and its DSSE envelope.

Subjects are every evidence file with its SHA-256; the predicate records the ceremony's facts.
Signing and envelope verification go through securesystemslib only; no hand-made crypto here.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from securesystemslib.dsse import Envelope

from ceremony import __version__
from ceremony.errors import VerificationError
from ceremony.evidence.facts import CeremonyFacts, sides, software_disagreements
from ceremony.ledger import STARTED
from ceremony.people import Person, Quorum
from ceremony.strictjson import strict_loads
from ceremony.workspace import COMPLETED

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://byok-ceremony.dev/ceremony/v1"


@dataclass(frozen=True)
class Subject:
    """One evidence file: its path in the workspace/archive and its SHA-256."""

    name: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": {"sha256": self.sha256}}


def tool_versions() -> dict[str, str]:
    """Versions of what seals and verifies, recorded beside the phases' own tool list."""
    versions = {"byok-ceremony": __version__, "python": platform.python_version()}
    for package in ("cryptography", "securesystemslib", "python-pkcs11", "azure-keyvault-keys"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def build_predicate(
    facts: CeremonyFacts,
    people: Iterable[Person],
    quorum: Quorum,
    *,
    sealed_at: str,
    plan: Mapping[str, Any] | None,
    exceptions: Iterable[str],
) -> dict[str, Any]:
    """The ceremony as recorded: who, which keys, with what, and what went differently."""
    preflight = facts.preflight
    # The HSM is described by the offline side's preflight, which need not be the first: on the
    # day the online side runs phase 00 first, and touches no HSM. The latest one counts.
    with_hsm = [r for r in facts.preflights.values() if r.hsm] or [preflight]
    hsm_side = with_hsm[-1]
    found = sides(facts)
    warnings = {w for record in facts.preflights.values() for w in record.warnings}
    return {
        "sealed_at": sealed_at,
        "rehearsal": bool(preflight and preflight.rehearsal),
        "plan": dict(plan) if plan else None,
        "people": [
            {
                "name": p.name,
                "role": p.role,
                "public_key_sha256": p.fingerprint.hex,
                "public_key_pem": p.public_key_pem,
                "signs": bool(p.signer),
            }
            for p in people
        ],
        "quorum": quorum.to_dict(),
        "phases": facts.phases,
        "stand_ins": _stand_ins(plan, facts.events),
        "kek": facts.kek.to_dict() if facts.kek else {},
        "keys": [_key_entry(k) for k in facts.keys],
        "tools": {**(preflight.tools if preflight else {}), **tool_versions()},
        "software": [
            {
                "record": side.record_name,
                "host": side.host,
                "with_hsm": side.with_hsm,
                **(side.software.to_dict() if side.software else {}),
            }
            for side in found
        ],
        "hsm": hsm_side.hsm if hsm_side else None,
        "wrap_self_test": hsm_side.self_test if hsm_side else None,
        "transcript": {"head": facts.transcript_head, "events": facts.transcript_events},
        "checkpoints": [
            {"phase": e.phase, "head": e.line_sha256} for e in facts.events if e.action == COMPLETED
        ],
        "exceptions": sorted(
            set(exceptions) | warnings | set(software_disagreements(found)) | _key_exceptions(facts)
        ),
    }


def statement_bytes(subjects: Iterable[Subject], predicate: Mapping[str, Any]) -> bytes:
    """The payload that is signed: readable JSON with sorted keys and subjects."""
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [s.to_dict() for s in sorted(subjects, key=lambda s: s.name)],
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(predicate),
    }
    return (json.dumps(statement, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def sha256sums(subjects: Iterable[Subject]) -> bytes:
    """The manifest in `sha256sum -c` format, sorted by name."""
    rows = sorted(subjects, key=lambda s: s.name)
    return "".join(f"{s.sha256}  {s.name}\n" for s in rows).encode()


def envelope_bytes(envelope: Envelope) -> bytes:
    """The envelope file's bytes (stable key order)."""
    return (json.dumps(envelope.to_dict(), indent=2, sort_keys=True) + "\n").encode()


def parse_envelope(content: bytes, name: str) -> Envelope:
    """Read an envelope file; VerificationError names it when it is not a DSSE envelope, or not
    byte for byte the form envelope_bytes() writes (so no duplicated key, extra field or other
    layout can make another DSSE reader see a different payload)."""
    try:
        envelope = Envelope.from_dict(strict_loads(content))
    except Exception as exc:  # securesystemslib raises several kinds on malformed input
        raise VerificationError(f"{name} is not a DSSE envelope ({exc}).", "") from None
    if envelope_bytes(envelope) != content:
        raise VerificationError(
            f"{name} is not in the canonical form the ceremony writes (an extra or duplicated "
            "field, or another layout).",
            "",
        )
    return envelope


def parse_statement(payload: bytes, name: str) -> dict[str, Any]:
    """The statement inside an envelope, with its shape checked."""
    try:
        statement = strict_loads(payload)
    except ValueError as exc:
        raise VerificationError(
            f"{name}: the signed payload is not plain JSON ({exc}).", ""
        ) from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"{name}: the payload is not an in-toto Statement v1.", "")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError(
            f"{name}: predicateType is {statement.get('predicateType')!r}, not {PREDICATE_TYPE}.",
            "",
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("name"), str)
        and isinstance(s.get("digest"), dict)
        and isinstance(s["digest"].get("sha256"), str)
        for s in subjects
    ):
        raise VerificationError(f"{name}: the statement's subjects are malformed.", "")
    if not isinstance(statement.get("predicate"), dict):
        raise VerificationError(f"{name}: the statement has no predicate object.", "")
    return statement


def _key_exceptions(facts: CeremonyFacts) -> set[str]:
    """Keys that left the ceremony without an import or without a possession proof."""
    found = set()
    for key in facts.keys:
        if key.imported is None:
            found.add(f"{key.name}: not imported (no keys/{key.name}.import.json)")
        elif key.imported.proof.get("method") == "none":
            found.add(f"{key.name}: {key.imported.proof.get('reason', 'no possession proof')}")
    return found


def _key_entry(key: Any) -> dict[str, Any]:
    record = key.record.to_dict() if key.record else {"name": key.name}
    record.pop("schema_version", None)
    entry: dict[str, Any] = dict(record)
    if key.imported:
        entry["vault_kid"] = key.imported.kid
        entry["proof_method"] = key.imported.proof.get("method")
    return entry


def _stand_ins(plan: Mapping[str, Any] | None, events: Iterable[Any]) -> dict[str, Any]:
    """What played a part it will not play on the day: the local vault standing in for Azure,
    and the modes the phases ran in (a strict rehearsal had no HSM allowances)."""
    vault = (plan or {}).get("vault") or {}
    modes = {e.data.get("mode") for e in events if e.action == STARTED and isinstance(e.data, dict)}
    return {
        "cloud": "local vault" if vault.get("local_state") else "Azure",
        "vault_url": vault.get("url"),
        "modes": sorted(m for m in modes if isinstance(m, str)),
    }
